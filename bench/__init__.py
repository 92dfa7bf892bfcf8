"""The benchmark, run as `python -m bench` (./run_bench.sh sets up first). The way through:
run.py, the flags and the plan (scenarios.py: what each --scenario runs); interleave.py, a
point's servers in interleaved slices (fair and the other closed-loop scenarios); measure.py,
one wrk run (article, c10k); offered.py, a fixed offered rate; capacity.py, --scenario
capacity; report/, everything that reads results.json (results.py: its contract), sharing only
results.py, intervals.py, text.py and profiles.py; syscalls.py apart. docs/servers.md maps
every file. Importing this package imports nothing else: --help works before .venv exists.
"""
