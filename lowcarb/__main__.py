"""``python -m lowcarb`` runs the command line."""

import sys

from lowcarb._cli import main

sys.exit(main())
