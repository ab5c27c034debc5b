"""`python -m lutfuse ...`: the same as the `lutfuse` command."""

import sys

from lutfuse.core.cli import main

sys.exit(main())
