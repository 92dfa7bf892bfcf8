"""What every measured run does around its window, whatever client it runs: place the load,
reset the data, check the knobs reached the server, start the open-loop client, account for
the CPU the machine spent, and say how it goes on stderr, within 100 columns. bench/measure.py
(wrk) and bench/offered.py (open loop) use it.

Standard library only at import, for bench/run.py's --help; reset_data needs .venv.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from bench.text import COLUMNS
from bench.placement import (affinity_of, cpus_for, machine_cpus, pin_services, pinned_to,
                             supported)

ROOT = Path(__file__).resolve().parent.parent
column = 0  # where the progress line open on stderr has got to (0: none is open)


def say(message, end="\n"):
    """A line of progress on stderr, "==> " first, wrapped to COLUMNS; with end=" ", left
    open for the dots of a run (dots) and its result (said_after)."""
    global column
    text = textwrap.fill(f"==> {message}", COLUMNS, subsequent_indent="    ",
                         break_on_hyphens=False)
    print(text, end=end, file=sys.stderr, flush=True)
    column = 0 if end.endswith("\n") else len(text.splitlines()[-1]) + len(end)


def said_after(result):
    """Close the open progress line with a run's result, on lines of its own."""
    global column
    print("\n" + textwrap.fill(result, COLUMNS, initial_indent="    ",
                               subsequent_indent="    "), file=sys.stderr, flush=True)
    column = 0


def place_load(where):
    """Move Postgres, Redis and this process onto the load's CPUs of placement `where` (this
    process samples the server: it is load too, off the server's CPU). Returns the
    placement's CPUs ({"server": None, "load": None} where the OS has no affinity) and a
    note on what could not be moved (None: nothing, or no affinity here)."""
    cpus = cpus_for(where) or {"server": None, "load": None}
    services = pin_services(cpus["load"]) if supported() else None
    if supported():
        os.sched_setaffinity(0, cpus["load"] or machine_cpus())
    return cpus, services


def where_it_ran(server, cpus, services, figures):
    """The run's "cpus" record: the server's CPUs read back from the OS, those its threads
    ran on (the sampler's figures), the load's, and what of the services could not be
    moved."""
    return {"server": affinity_of(server.pid), "seen": figures["server_cpus_seen"],
            "load": cpus["load"], "services": services or "as the load"}


def reset_data():
    from scripts.reset_db import reset  # psycopg2 and redis: from .venv
    reset(os.environ["DATABASE_URL"], os.environ["REDIS_URL"])


def ran_with(case, server):
    """The knobs the server reports; a knob the case set must have reached it."""
    knobs = server.stats()["knobs"]
    lost = {name: value for name, value in case.knobs.items() if knobs.get(name) != value}
    if lost:
        raise SystemExit(f"bench: {case.series} was started with {lost} but reports "
                         f"{ {name: knobs.get(name) for name in lost} }")
    return knobs


def other_cpu(run):
    """CPU the machine spent during the window on anything but the server, Postgres, Redis,
    the clients (wrk, the open-loop client, the idle clients), py-spy when profiling, and
    this benchmark: a
    browser, a build, another test run. None where a part could not be measured."""
    parts = [run["server_cpu_s"], run.get("postgres_cpu_s"), run.get("redis_cpu_s"),
             run["wrk_cpu_s"], run.get("probe_cpu_s", 0), run.get("profiler_cpu_s", 0),
             run.get("bench_cpu_s"),
             (run["idle"] or {}).get("cpu_s", 0)]
    if run.get("machine_busy_s") is None or None in parts:
        return None
    return round(max(0.0, run["machine_busy_s"] - sum(parts)), 2)


def start_openloop(port, rate, seconds, timeout_s, warmup_s, cpus, stderr, post=None,
                   source=None, raw=False):
    """bench/openloop.py in a subprocess on `cpus`; read its report with read_openloop.
    source: connect from this loopback address, and report raw figures for merging (as
    raw does, for pooling: bench/capacity.py)."""
    body = ["--path", "/items", "--post", post] if post else []
    body += ["--source", source] if source else []
    body += ["--raw"] if source or raw else []
    return subprocess.Popen(
        [sys.executable, "-m", "bench.openloop", "--port", str(port), "--rate", f"{rate:g}",
         "--duration", f"{seconds:g}", "--timeout", f"{timeout_s:g}", "--warmup",
         f"{warmup_s:g}", *body], stdout=subprocess.PIPE, stderr=stderr, text=True,
        cwd=ROOT, preexec_fn=pinned_to(cpus))


def read_openloop(client, timeout_s, log_path):
    """The open-loop client's JSON report, once it has finished its requests."""
    output, _ = client.communicate(timeout=timeout_s + 60)
    if client.returncode != 0 or not output.strip():
        raise SystemExit(f"bench: the open-loop client failed ({client.returncode}); its "
                         f"output is in {log_path}")
    return json.loads(output)


def dot():
    """One dot of progress; past COLUMNS, on a new indented line."""
    global column
    if column >= COLUMNS:
        print("\n   ", end="", file=sys.stderr)
        column = 3
    print(".", end="", file=sys.stderr, flush=True)
    column += 1


def dots(seconds, each_second=None):
    """Wait, printing a dot a second, as a wrk run does, and calling each_second() if given."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        dot()
        if each_second:
            each_second()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
