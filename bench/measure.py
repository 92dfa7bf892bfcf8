"""One closed-loop run: wrk's connections opened and all answered once, then a measured window
of steady state, with the server sampled, a probe timing requests, and the counts audited.

    wrk starts: N connections at once ... every one answered once (watch_opening) ... --warmup
    seconds (the probe starts in its last second) ... the window: --duration s ... wrk stopped

One wrk process throughout, so the window's connections are the ones already open: nothing
in it is the cost of opening them, which is its own figure ("opening"). An event loop accepts
them all and answers them in turn; a server with a thread per connection must first start a
thread each, while the threads already running compete with it for the GIL. In the window:
  - throughput is the requests served, per second, as Redis (page views) or Postgres
    (inserts) counted them;
  - latency comes from a probe: bench/openloop.py sending the same request at a low fixed
    rate (3% of what the server served in the warm-up, at most 50 a second; probe_rate)
    on connections of its own, each timed from when it was due. It queues with wrk's
    requests for the same pools, threads and event loop, so it sees what they see; unlike
    wrk's percentiles, it adds no synthetic samples (wrk 4.1.0 back-fills for every
    response slower than twice the mean interval) and ranks a timeout after every answer.
wrk's own counts (timeouts, errors, non-2xx) cover its whole run, opening included.

Needs .venv (psycopg2, redis, psutil): bench/run.py imports it only after parsing its flags.
"""

import os
import shutil
import subprocess
import time
from dataclasses import asdict

from bench.each_run import (dot, dots, other_cpu, place_load, ran_with, read_openloop, reset_data,
                            start_openloop, where_it_ran)
from bench.idle import Held
from bench.placement import service_processes
from bench.sampling import Sampler, cpu_seconds, measured
from bench.wrk import WrkOutputError, parse_wrk, start_wrk, stop_wrk, threads_for
from scripts.reset_db import count_rows, counter_value

PROBE_SHARE = 0.03  # of the rate the server served in the warm-up: the probe adds little load
PROBE_MAX_RATE = 50  # requests a second: 500 timed in a 10 s window
PROBE_WARMUP_S = 1  # the probe's own connections open before its window
PROBE_BODY = '{"text": "a probe"}'


def measure(case, server, timing, out_dir, step):
    """Run `case` against the running `server` and return the run as results.json keeps it
    (bench/results.py describes every field). `timing` holds warmup_s, duration_s, threads
    and placement (the flag's, or None)."""
    url = f"http://127.0.0.1:{server.port}/"
    threads = threads_for(case.connections, timing.threads)
    where = case.placement
    cpus, services = place_load(where)
    held = Held(server, case.idle, cpus["load"]) if case.idle else None
    reset_data()
    rows_at_start = count_rows(os.environ["DATABASE_URL"])
    knobs = ran_with(case, server)
    started = time.monotonic()
    probe_warmup_s = max(0.3, min(PROBE_WARMUP_S, timing.warmup_s))  # --quick: 0.3 s
    total_s = timing.opening_limit_s + timing.warmup_s + probe_warmup_s + timing.duration_s + 5
    wrk = start_wrk(case, url, threads, total_s, cpus=cpus["load"])
    probe = None
    try:
        # a --workers server closes each connection after its answer, as gunicorn's sync
        # workers do: wrk's connections come and go, and there is no opening to time
        opening = watch_opening(server.port, wrk.pid, case.connections, started,
                                0 if case.knobs.get("workers") else timing.opening_limit_s)
        warm_from, warm_count = time.monotonic(), served_count(case, rows_at_start)
        dots(max(0.1, timing.warmup_s - probe_warmup_s))  # the probe warms up in the rest
        warm_rate = ((served_count(case, rows_at_start) - warm_count)
                     / (time.monotonic() - warm_from))
        raw_name = f"{step}-{case.kind}-{case.method.lower()}-c{case.connections}.txt"
        with open(out_dir / f"{raw_name[:-4]}-probe.txt", "w") as probe_log:
            wrk_cpu_before = measured(lambda: cpu_seconds(wrk.pid))
            # first: a saturated --workers server can keep the sampler's first /stats
            # waiting for seconds, and the counted window must not include them
            sampler = Sampler(server, service_processes)
            probe = start_openloop(server.port, probe_rate(warm_rate), timing.duration_s,
                                   case.timeout_s, probe_warmup_s, cpus["load"], probe_log,
                                   post=PROBE_BODY if case.method == "POST" else None)
            dots(probe_warmup_s + 0.1)  # the probe's window opens after its warm-up
            opened, counted_before = time.monotonic(), served_count(case, rows_at_start)
            dots(timing.duration_s)
            served = served_count(case, rows_at_start) - counted_before
            window_s = round(time.monotonic() - opened, 3)
            sampler.stop()
            wrk_cpu_after = measured(lambda: cpu_seconds(wrk.pid))
            output = stop_wrk(wrk)
            probed = read_openloop(probe, case.timeout_s, out_dir / probe_log.name)
    except BaseException:  # Ctrl-C, SIGTERM, an error: no client outlives the run
        if held:
            held.process.kill()
        raise
    finally:
        for client in (wrk, probe):
            if client and client.poll() is None:
                client.kill()
    drained = server.wait_idle()
    idle = held.stop() if held else None
    (out_dir / raw_name).write_text(output)
    try:
        numbers = parse_wrk(output)
    except WrkOutputError as error:
        raise SystemExit(f"bench: {error}; wrk printed:\n{output}") from None
    figures = sampler.figures()
    run = {**asdict(case), "flags": list(case.flags), "knobs": knobs,
           "path": "/items" if case.method == "POST" else "/",
           "duration_s": timing.duration_s, "window_s": window_s, "threads": threads,
           **whole_run(numbers), **figures, **steady(served, window_s, probed),
           "opening": opening, "probe": probe_figures(probed),
           "wrk_cpu_s": used(wrk_cpu_before, wrk_cpu_after),
           "probe_cpu_s": probed["client_cpu_s"], "placement": where,
           "cpus": where_it_ran(server, cpus, services, figures),
           "idle": idle, "raw": raw_name}
    run["other_cpu_s"] = other_cpu(run)
    run["audit"] = audit(case, numbers, probed, drained, rows_at_start)
    run["valid"] = numbers["socket_errors"]["connect"] == 0
    return run


def whole_run(numbers):
    """wrk's counts over its whole run, opening included, under the names results.py gives
    them; its own rate and percentiles, which mix the opening in, stay in its raw output."""
    return {"wrk_requests": numbers["requests"], "wrk_seconds": numbers["seconds"],
            "ok": numbers["ok"], "non_2xx": numbers["non_2xx"],
            "timeouts": numbers["timeouts"], "socket_errors": numbers["socket_errors"]}


def probe_rate(warm_rate):
    """The probe's requests a second: a small share of what the server was serving, so that
    it adds little load (50 a second is 3% of 1,700 pages, but half of what a server
    computing 10 ms a page can serve), at least one."""
    return max(1, min(PROBE_MAX_RATE, round(PROBE_SHARE * warm_rate)))


def served_count(case, rows_at_start):
    """Requests served so far, as Redis or Postgres counted them: each page view adds one to
    the Redis counter, each insert one row. Read from the data, not asked of the server: a
    saturated --workers 2 server leaves the sampler's /stats requests unanswered."""
    if case.method == "GET":
        return counter_value(os.environ["REDIS_URL"])
    return count_rows(os.environ["DATABASE_URL"]) - rows_at_start


def steady(served, window_s, probed):
    """The window's throughput, as Redis or Postgres counted it, and its latency, from the
    probe; and Little's law over them: requests in service = throughput x mean latency, to
    set beside the connections held (it cannot exceed them by more than the probe's own)."""
    rps = round(served / window_s, 1)
    mean = probed["mean_answered_ms"]
    return {"rps": rps, "requests": served,
            "latency_mean_ms": mean,
            **{key: probed[key] for key in ("p50_ms", "p90_ms", "p99_ms")},
            "latency_samples": probed["samples"],
            **{f"{p}_interval_ms": probed[f"{p}_interval_ms"] for p in ("p50", "p90", "p99")},
            "littles_law_in_service": (round(rps * mean / 1000, 1)
                                       if rps is not None and mean is not None else None)}


def probe_figures(probed):
    """What results.json keeps of the probe's report (openloop.py's docstring)."""
    keys = ("offered_rate", "sent", "ok", "non_2xx", "timeouts", "errors", "samples",
            "p999_ms", "p999_interval_ms", "max_ms", "mean_answered_ms", "connections_opened",
            "client_behind")
    return {key: probed[key] for key in keys}


def used(before, after):
    return None if None in (before, after) else round(after - before, 2)


def audit(case, numbers, probed, drained, rows_at_start):
    """The server's own counts against the clients': each successful GET added one to the
    Redis counter, each 201 one row. Requests in flight when wrk stopped were served but not
    counted by wrk, at most one per connection; so were the probe's requests it gave up on.

    Returns {counted, wrk_ok, probe_ok, allowed_extra, what, result}; result is "ok",
    "FAILED", or "UNSETTLED" when requests were still in service a minute after wrk stopped."""
    counted = served_count(case, rows_at_start)
    probe_sent = round(probed["offered_rate"] * probed["warmup_s"]) + probed["sent"]
    expected = numbers["ok"] + probed["ok_all"]
    extra = case.connections + probe_sent - probed["ok_all"]
    verdict = {"counted": counted, "wrk_ok": numbers["ok"], "probe_ok": probed["ok_all"],
               "allowed_extra": extra,
               "what": "Redis counter" if case.method == "GET" else "new rows"}
    if not drained:
        verdict["result"] = "UNSETTLED"
    elif expected <= counted <= expected + extra:
        verdict["result"] = "ok"
    else:
        verdict["result"] = "FAILED"
    return verdict


def answered_connections(port, client_pid):
    """(open, answered): the connections process `client_pid` holds to `port`, and those on
    which an answer has arrived; None where ss cannot tell.

    Read from the OS, not from the server: a socket of the client's process that has received
    bytes from the server's port (`ss -tip` shows bytes_received) has had an answer. Only the
    client's own sockets count, not the probe's, the sampler's or idle clients'. Linux only
    (ss, iproute2); elsewhere None."""
    if not shutil.which("ss"):
        return None
    listed = subprocess.run(["ss", "-tinpH", "state", "established", f"( dport = :{port} )"],
                            capture_output=True, text=True, timeout=30)
    if listed.returncode != 0:
        return None
    opened = answered = 0
    owner = f"pid={client_pid},"
    lines = listed.stdout.splitlines()
    for socket_line, details in zip(lines, lines[1:]):
        if owner in socket_line and details.startswith(("\t", " ")):
            opened += 1
            answered += "bytes_received:" in details
    return opened, answered


def watch_opening(port, client_pid, connections, started, limit_s):
    """Poll until the client has had an answer on `connections` connections, at most
    `limit_s` after `started` (time.monotonic()). Returns the figure for results.json:
    {connections, all_answered_s (None if not within the limit, or unmeasurable), answered
    (by then), limit_s}; with limit_s 0, nothing is watched and both are None. Prints a dot
    a second, as a run does."""
    figure = {"connections": connections, "all_answered_s": None, "answered": None,
              "limit_s": limit_s}
    next_dot = 0.0
    while (elapsed := time.monotonic() - started) < limit_s:
        counts = answered_connections(port, client_pid)
        if counts is None:
            return figure
        figure["answered"] = counts[1]
        if figure["answered"] >= connections:
            figure["all_answered_s"] = round(elapsed, 2)
            return figure
        if elapsed >= next_dot:
            dot()
            next_dot += 1
        time.sleep(0.1)
    return figure
