"""python -m bench: the benchmark's driver (bench/run.py)."""

from bench.run import main

raise SystemExit(main())
