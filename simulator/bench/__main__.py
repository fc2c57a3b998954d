"""`python -m simulator.bench`: the benchmark of issue 8 (see `cli.py`)."""

import sys

from simulator.bench.cli import main

sys.exit(main())
