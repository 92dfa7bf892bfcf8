"""The benchmark, run as `python -m bench` (./run_bench.sh sets up first). The way through:

    run.py        the flags and the plan (scenarios.py: what each --scenario runs)
    interleave.py a point's servers with wrk, in interleaved slices: how fair and the other
                  closed-loop scenarios compare (measure.py: one wrk run in sequence, for
                  article and c10k; offered.py: one run at a fixed offered rate)
    capacity.py   --scenario capacity: saturation, then rates offered to both in rounds, pooled
    report/       reads results.json (results.py: its contract) and writes summary.md, what a
                  run prints at the end, report.html, the charts and the flame graphs; it and
                  the rest share only results.py, intervals.py, text.py and profiles.py
    syscalls.py   apart: each server's system calls per request (python -m bench.syscalls)

Importing this package imports nothing else: --help works before .venv exists.
"""
