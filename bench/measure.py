"""One measured run: warm up, reset the data, run wrk with the server sampled, audit the counts.

Needs .venv (psycopg2, redis, psutil): bench/run.py imports it only after parsing its flags.
"""

import os
from dataclasses import asdict

from bench.idle import Held
from bench.placement import (DEFAULT, affinity_of, cpus_for, machine_cpus, pin_services,
                       service_processes, supported)
from scripts.reset_db import count_rows, counter_value, reset
from bench.sampling import Sampler
from bench.wrk import run_wrk, threads_for
from bench.wrkparse import WrkOutputError, parse_wrk


def measure(case, server, args, out_dir, step):
    """Run `case` against the running `server` and return the run as results.json keeps it.

    A run is a dict of:
      the Case's fields (scenarios.Case): point, x, series, kind, method, connections,
        timeout_s; flags, the server's flags; knobs, every knob as the server's /stats
        reported it ran with, defaults included (common.Settings.knobs);
      path ("/" or "/items"), duration_s, and threads: the wrk threads this run used, at
        most its connections (wrk.threads_for);
      wrk's figures (wrkparse.parse_wrk): requests, seconds, rps, ok, non_2xx, timeouts,
        socket_errors, latency_mean_ms, p50_ms, p90_ms, p99_ms;
      the server's (sampling.Sampler.figures): peak_threads, peak_rss_mb, peak_in_service,
        mean_in_service, server_cpu_s, server_cpu_user_s, server_cpu_system_s,
        server_ctx_switches_voluntary, server_ctx_switches_involuntary, server_migrations
        (over every thread: bench/scheduler.py), server_switches_per_request,
        server_migrations_per_request, server_cpus_seen, gc_pause_ms, longest_gc_pause_ms,
        full_collections (the server's garbage collections in the window, as it timed them);
        each None where this platform cannot measure it, never 0;
      the CPU of the rest, over the same window: postgres_cpu_s, redis_cpu_s (None where
        their processes are not ours to read), wrk_cpu_s;
      placement, and cpus: {"server": the CPUs the server process may use, read back from
        the OS, "seen": those its threads were seen running on (sampling.Sampler), "load":
        those wrk, Postgres and Redis were given, "services": what could not be moved with
        the load, if anything}; each None where the OS has no affinity;
      idle: with case.idle, what the idle clients saw (idle.Held.stop), else None;
      machine_busy_s, bench_cpu_s, other_cpu_s: the CPU all cores spent meanwhile, this
        benchmark's own, and what neither it nor what it measures used (other_cpu);
      raw, the file holding wrk's output; audit (see audit()); valid, False if
        wrk could not open all its connections; littles_law_in_service, where wrk timed
        any response. bench/run.py adds repeat, counted from 0.
    """
    url = f"http://127.0.0.1:{server.port}/"
    threads = threads_for(case.connections, args.threads)
    where = case.placement or args.placement or DEFAULT
    cpus, services = place_load(where)
    reset_data()
    run_wrk(case, url, threads, args.warmup, cpus=cpus["load"])  # unmeasured
    server.wait_idle()
    held = Held(server, case.idle, cpus["load"]) if case.idle else None
    reset_data()
    rows_at_start = count_rows(os.environ["DATABASE_URL"])
    knobs = ran_with(case, server)
    sampler = Sampler(server, service_processes)
    output, wrk_cpu_s = run_wrk(case, url, threads, args.duration, progress=True,
                                cpus=cpus["load"])
    sampler.stop()
    drained = server.wait_idle()
    idle = held.stop() if held else None
    raw_name = f"{step}-{case.kind}-{case.method.lower()}-c{case.connections}.txt"
    (out_dir / raw_name).write_text(output)
    try:
        numbers = parse_wrk(output)
    except WrkOutputError as error:
        raise SystemExit(f"bench: {error}; wrk printed:\n{output}") from None
    figures = sampler.figures()
    run = {**asdict(case), "flags": list(case.flags), "knobs": knobs,
           "path": "/items" if case.method == "POST" else "/",
           "duration_s": args.duration, "threads": threads, **numbers,
           **figures, "wrk_cpu_s": wrk_cpu_s, "placement": where,
           "cpus": where_it_ran(server, cpus, services, figures),
           "idle": idle, "raw": raw_name}
    run["other_cpu_s"] = other_cpu(run)
    run["audit"] = audit(case, numbers, drained, rows_at_start)
    run["valid"] = numbers["socket_errors"]["connect"] == 0
    if numbers["latency_mean_ms"] is not None:  # Little's law: L = lambda x W
        in_service = numbers["rps"] * numbers["latency_mean_ms"] / 1000
        run["littles_law_in_service"] = round(in_service, 1)
    return run


def where_it_ran(server, cpus, services, figures):
    """The run's "cpus" record (see measure): the server's CPUs read back from the OS, those
    its threads ran on (the sampler's figures), the load's, and what of the
    services could not be moved."""
    return {"server": affinity_of(server.pid), "seen": figures["server_cpus_seen"],
            "load": cpus["load"], "services": services or "as the load"}


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


def other_cpu(run):
    """CPU the machine spent during the run on anything but the server, Postgres, Redis,
    wrk, the idle clients and this benchmark: a browser, a build, another test run. None
    where a part could not be measured."""
    parts = [run["server_cpu_s"], run.get("postgres_cpu_s"), run.get("redis_cpu_s"),
             run["wrk_cpu_s"], run.get("bench_cpu_s"), (run["idle"] or {}).get("cpu_s", 0)]
    if run.get("machine_busy_s") is None or None in parts:
        return None
    return round(max(0.0, run["machine_busy_s"] - sum(parts)), 2)


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


def audit(case, numbers, drained, rows_at_start):
    """The server's own counts against wrk's: each successful GET added one to the Redis
    counter, each 201 one row. Requests still in flight when wrk stopped were served but not
    counted by wrk: at most one per connection.

    Returns {counted, wrk_ok, allowed_extra, what, result}; result is "ok", "FAILED", or
    "UNSETTLED" when requests were still in service a minute after wrk stopped."""
    if case.method == "GET":
        counted = counter_value(os.environ["REDIS_URL"])
    else:
        counted = count_rows(os.environ["DATABASE_URL"]) - rows_at_start
    expected = numbers["ok"]
    verdict = {"counted": counted, "wrk_ok": expected, "allowed_extra": case.connections,
               "what": "Redis counter" if case.method == "GET" else "new rows"}
    if not drained:
        verdict["result"] = "UNSETTLED"
    elif expected <= counted <= expected + case.connections:
        verdict["result"] = "ok"
    else:
        verdict["result"] = "FAILED"
    return verdict
