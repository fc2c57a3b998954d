"""``python -m simulator``: the same as ``eldercall simulate``."""

import sys

from simulator.cli import main

sys.exit(main())
