"""One run at a fixed offered rate: bench/openloop.py sends requests on a schedule, answered or
not, while the server is sampled as in a wrk run; then the limits the run met are named.

wrk keeps N connections busy, each sending its next request when the last is answered (a
closed loop): it measures capacity, and a server that slows down slows wrk down with it.
Users arrive on their own schedule: here request i is due at i / rate and is timed from
then. With a slow upstream (--io-delay-ms), rate x wait requests are in flight at once
(Little's law): a thread each in the sync server, a coroutine each in the async one.

Needs .venv (psycopg2, redis, psutil), as measure.py does.
"""

import os
from dataclasses import asdict

from bench.each_run import (dots, other_cpu, place_load, ran_with, read_openloop, reset_data,
                            start_openloop, where_it_ran)
from bench.idle import grown, kernel_stack_kb
from bench.limits import held_by
from bench.placement import DEFAULT, service_processes
from bench.sampling import Sampler
from scripts.reset_db import counter_value
# What a server's log says when it meets a limit, and the limit it names.
LIMIT_SIGNS = {
    "can't start new thread": "threads: the OS refused to start one",
    "Too many open files": "open files (RLIMIT_NOFILE)",
    "out of system resource": "open files (RLIMIT_NOFILE)",  # asyncio's accept loop
    "MemoryError": "memory",
}


def measure_offered(case, server, timing, out_dir, step):
    """Run `case` (case.rate requests a second, each waiting case.knobs["io_delay_ms"]) against
    the running `server`; return the run as results.json keeps it (bench/results.py: every
    run's fields and OPEN_LOOP's). `timing` is run.Timing."""
    where = case.placement or timing.placement or DEFAULT
    cpus, services = place_load(where)
    reset_data()
    knobs = ran_with(case, server)
    wait_s = case.knobs.get("io_delay_ms", 0) / 1000
    warmup_s = wait_s + timing.warmup_s  # long enough for rate x wait to be in flight
    log_mark, kernel_before = len(server.log()), kernel_stack_kb()
    raw_name = f"{step}-{case.kind}-openloop-r{case.rate:g}.txt"
    with open(out_dir / raw_name, "w") as progress:
        client = start_openloop(server.port, case.rate, timing.duration_s, case.timeout_s,
                                warmup_s, cpus["load"], progress)
        dots(warmup_s + 0.3)  # the client's window opens after its warm-up
        sampler = Sampler(server, service_processes, light=True)
        dots(timing.duration_s)
        sampler.stop()
        held, kernel_after = measured_held(server.pid), kernel_stack_kb()
        report = read_openloop(client, case.timeout_s, out_dir / raw_name)
    server.wait_idle()
    figures = sampler.figures()
    run = {**asdict(case), "flags": list(case.flags), "knobs": knobs, "path": "/",
           "duration_s": timing.duration_s, "threads": None, **client_figures(report),
           **figures, "wrk_cpu_s": report["client_cpu_s"], "placement": where,
           "cpus": where_it_ran(server, cpus, services, figures),
           "idle": None, "raw": raw_name, "offered": report,
           "in_flight_peak": report["peak_in_flight"],
           "waiting_upstream_peak": (sampler.last_stats or {}).get("peak_waiting_upstream"),
           "held": held, "kernel_stack_kb": grown(kernel_before, kernel_after),
           "limit_met": limit_met(server.log()[log_mark:], report)}
    run["other_cpu_s"] = other_cpu(run)
    run["audit"] = audit(case, report, warmup_s)
    run["valid"] = not report["errors"].get("client_fd_limit")
    return run


def client_figures(report):
    """The open-loop report under the names the summary reads for a wrk run."""
    return {"requests": report["sent"],
            "rps": report["achieved_rate"], "ok": report["ok"], "non_2xx": report["non_2xx"],
            "timeouts": report["timeouts"], "socket_errors": report["errors"],
            "latency_mean_ms": None,
            **{key: report[key] for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms")}}


def audit(case, report, warmup_s):
    """Each page served added one to the Redis counter: at least the window's successes,
    at most those plus every warm-up request and every request the client gave up on (the
    server may still have served it)."""
    counted = counter_value(os.environ["REDIS_URL"])
    extra = round(case.rate * warmup_s) + report["timeouts"] + sum(report["errors"].values())
    ok = report["ok"]
    result = "ok" if ok <= counted <= ok + extra else "FAILED"
    return {"counted": counted, "wrk_ok": ok, "allowed_extra": extra, "what": "Redis counter",
            "result": result}


def limit_met(log, report):
    """The first limit the run met, as the server's log or the client's errors name it;
    None if neither met one."""
    for line in log.splitlines():
        for sign, limit in LIMIT_SIGNS.items():
            if sign in line:
                return f"server: {limit}"
    errors = report["errors"]
    if errors.get("client_fd_limit"):
        return "client: open files (RLIMIT_NOFILE)"
    if errors.get("connect"):
        return f"connections refused or reset ({errors['connect']:,})"
    return None


def measured_held(pid):
    try:
        return held_by(pid)
    except OSError:
        return None

