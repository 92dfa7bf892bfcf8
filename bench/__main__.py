"""python -m bench: the benchmark's driver (bench/run.py)."""

import sys

from bench.run import main

sys.exit(main())
