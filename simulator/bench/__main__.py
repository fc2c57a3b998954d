import sys

from simulator.bench.cli import main

sys.exit(main())
