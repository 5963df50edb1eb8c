"""``python -m lowcarb``: the command line."""

import sys

from lowcarb.cli import main

sys.exit(main())
