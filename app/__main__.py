"""`python -m lutfuse.app [FRAME...]`: the editor, same as `lutfuse gui`."""

import sys

from lutfuse.core.cli import main

sys.exit(main(["gui", *sys.argv[1:]]))
