"""One module per `lutfuse` subcommand; each exposes register(subparsers)."""
