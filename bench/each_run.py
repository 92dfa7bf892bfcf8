"""What every measured run does around its window, whatever client it runs: place the load,
reset the data, check the knobs reached the server, start the open-loop client, and account
for the CPU the machine spent. bench/measure.py (wrk) and bench/offered.py (open loop) use it.

Needs .venv (psycopg2, redis, psutil).
"""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.placement import affinity_of, cpus_for, machine_cpus, pin_services, supported
from bench.placement import pinned_to
from scripts.reset_db import reset

ROOT = Path(__file__).resolve().parent.parent


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
                   source=None):
    """bench/openloop.py in a subprocess on `cpus`; read its report with read_openloop.
    source: connect from this loopback address, and report raw figures for merging."""
    body = ["--path", "/items", "--post", post] if post else []
    body += ["--source", source, "--raw"] if source else []
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


def dots(seconds, each_second=None):
    """Wait, printing a dot a second, as a wrk run does, and calling each_second() if given."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        print(".", end="", file=sys.stderr, flush=True)
        if each_second:
            each_second()
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
