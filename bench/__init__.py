"""The benchmark, run as `python -m bench` (./run_bench.sh sets up first). The way through:

    run.py        the flags and the plan (scenarios.py: what each --scenario runs)
    measure.py    one closed-loop run with wrk (offered.py: one run at a fixed offered rate)
    capacity.py   --scenario capacity: saturation, then rates offered to both servers in
                  rounds, pooled (capacity_report.py: its sentences, table and charts)
    intervals.py  the 95% interval of a ratio over rounds and of a latency percentile
    report.py     summary.md and what a run prints at the end, at most 100 columns wide; read
                  in plain words by reading.py, each cell written by cells.py
    page.py       report.html, the page a learner opens (charts.py: its charts, and chart.svg)
    syscalls.py   apart: each server's system calls per request (python -m bench.syscalls)

Importing this package imports nothing else: --help works before .venv exists.
"""
