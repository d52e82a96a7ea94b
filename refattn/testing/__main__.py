"""``python -m refattn.testing check MODULE:FUNCTION --convention NAME [--json] [--quick]``."""

import sys

from refattn.testing.cli import main

sys.exit(main())
