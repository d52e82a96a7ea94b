"""``python -m refattn.testing check MODULE:FUNCTION --convention NAME [--json] [--quick]``."""

import sys

from refattn.testing.cli import main

if __name__ == "__main__":
    sys.exit(main())
