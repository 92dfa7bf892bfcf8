"""What every measured run does around its window, whatever its client: place the load, reset
and count the data, build the run's record and audit, and print progress on stderr.

Standard library only at import, for bench/run.py's --help; reset_data and Count need .venv.
"""

import json
import os
import subprocess
import sys
import textwrap
import time
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

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


class Placed(NamedTuple):
    """Where a run's load went: the placement's CPUs ({"server": None, "load": None} where
    the OS has no affinity), and a note on what could not be moved (None: nothing, or no
    affinity here)."""
    cpus: dict
    services: object


def place_load(where):
    """Move Postgres, Redis and this process onto the load's CPUs of placement `where` (this
    process samples the server: it is load too, off the server's CPU)."""
    cpus = cpus_for(where) or {"server": None, "load": None}
    services = pin_services(cpus["load"]) if supported() else None
    if supported():
        os.sched_setaffinity(0, cpus["load"] or machine_cpus())
    return Placed(cpus, services)


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
    """CPU the machine spent in the window on anything but the server, Postgres, Redis, the
    clients, py-spy and this benchmark (a browser, a build); None where a part is unknown."""
    parts = [run["server_cpu_s"], run.get("postgres_cpu_s"), run.get("redis_cpu_s"),
             run["wrk_cpu_s"], run.get("probe_cpu_s", 0), run.get("profiler_cpu_s", 0),
             run.get("bench_cpu_s"), (run["idle"] or {}).get("cpu_s", 0)]
    if run.get("machine_busy_s") is None or None in parts:
        return None
    return round(max(0.0, run["machine_busy_s"] - sum(parts)), 2)


def record(case, server, knobs, placed, figures, raw, threads, duration_s, **more):
    """The run as results.json keeps it (bench/results.py): the case, where it ran (`placed`:
    place_load's), the knobs (ran_with's), the sampler's `figures`, the client's `more`, and
    other_cpu_s over them all."""
    run = {**asdict(case), "flags": list(case.flags), "knobs": knobs,
           "path": "/items" if case.method == "POST" else "/", "duration_s": duration_s,
           "threads": threads, **figures, "placement": case.placement, "idle": None,
           "cpus": {"server": affinity_of(server.pid), "seen": figures["server_cpus_seen"],
                    "load": placed.cpus["load"], "services": placed.services or "as the load"},
           "raw": raw, **more}
    run["other_cpu_s"] = other_cpu(run)
    return run


def audit(method, counted, extra, drained=True, **oks):
    """The server's count against the clients' 2xx answers (`oks`, added up): each page adds
    one to the Redis counter, each insert one row; `extra` more may have been served but not
    seen answered. UNSETTLED: requests were still in service long after the load."""
    expected = sum(oks.values())
    return {"counted": counted, **oks, "allowed_extra": extra,
            "what": "Redis counter" if method == "GET" else "new rows",
            "result": ("UNSETTLED" if not drained else "ok"
                       if expected <= counted <= expected + extra else "FAILED")}


class Count:
    """Requests served since it was made, read from the data on connections kept open: the
    Redis counter (pages), or the newest row's id (inserts: an index lookup, where count(*)
    scans a table growing by thousands of rows a second; reset_data recreates the table, so
    ids restart and nothing deletes a row)."""

    def __init__(self, method):
        import psycopg2  # from .venv
        import redis
        self.method = method
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.postgres = psycopg2.connect(os.environ["DATABASE_URL"])
        self.postgres.autocommit = True
        self.start = 0
        self.start = self.now()

    def now(self):
        if self.method == "GET":
            return int(self.redis.get("counter") or 0) - self.start
        with self.postgres.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM item")
            return cursor.fetchone()[0] - self.start

    def close(self):
        self.redis.close()
        self.postgres.close()


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


def dots(seconds, each_second=None, shown=True):
    """Wait, printing a dot a second (if shown), as a wrk run does, and calling each_second()
    if given."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if shown:
            dot()
        if each_second:
            each_second()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
