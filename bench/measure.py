"""One closed-loop run in sequence (article, c10k, capacity's saturation): wrk's connections
opened and each answered once ("opening"), a warm-up, then a window of steady state on the same
connections (none of it the cost of opening them), with the server sampled, its throughput
counted from the data and its latency timed by a probe.

The probe is bench/openloop.py at a low fixed rate on connections of its own, each request
timed from when it was due: it queues with wrk's requests, so it sees what they see, and it
adds none of wrk 4.1.0's synthetic samples (back-filled for every response slower than twice
the mean interval). wrk's own counts cover its whole run, opening included.
Needs .venv (psycopg2, redis, psutil): bench/run.py imports it only after parsing its flags.
"""

import shutil
import subprocess
import time

import psutil

from bench.each_run import (Count, audit, dot, dots, place_load, ran_with, read_openloop,
                            record, reset_data, start_openloop)
from bench.idle import Held
from bench.placement import service_processes
from bench.sampling import Sampler, cpu_times, measured
from bench.wrk import WrkOutputError, parse_wrk, start_wrk, stop_wrk, threads_for

PROBE_SHARE = 0.03  # of the rate the server served in the warm-up: the probe adds little load
PROBE_MAX_RATE = 50  # requests a second: 500 timed in a 10 s window
PROBE_WARMUP_S = 1  # the probe's own connections open before its window
PROBE_BODY = '{"text": "a probe"}'
PERCENTILES = ("p50_ms", "p90_ms", "p99_ms", "p50_interval_ms", "p90_interval_ms",
               "p99_interval_ms")  # a run's latency figures (results.py)


def measure(case, server, timing, out_dir, step):
    """Run `case` against the running `server`; the run as results.json keeps it. `timing`:
    run.Timing."""
    url = f"http://127.0.0.1:{server.port}/"
    threads = threads_for(case.connections, timing.threads)
    placed = place_load(case.placement)
    probe_warmup_s = max(0.3, min(PROBE_WARMUP_S, timing.warmup_s))  # --quick: 0.3 s
    total_s = timing.opening_limit_s + timing.warmup_s + probe_warmup_s + timing.duration_s + 5
    held = count = wrk = probe = None  # each started inside the try: stopped however it ends
    try:
        held = Held(server, case.idle, placed.cpus["load"]) if case.idle else None
        reset_data()
        count = Count(case.method)
        knobs = ran_with(case, server)
        started = time.monotonic()
        wrk = start_wrk(case, url, threads, total_s, cpus=placed.cpus["load"])
        opening = watch_opening(server.port, wrk.pid, case.connections, started,
                                opening_limit_s(case, timing))
        warm_from, warm_count = time.monotonic(), count.now()
        dots(max(0.1, timing.warmup_s - probe_warmup_s))  # the probe warms up in the rest
        warm_rate = (count.now() - warm_count) / (time.monotonic() - warm_from)
        raw_name = raw_name_of(case, step)
        with open(out_dir / f"{raw_name[:-4]}-probe.txt", "w") as probe_log:
            wrk_cpu_before = measured(lambda: cpu_times([psutil.Process(wrk.pid)]).total)
            # first: a saturated --workers server can keep the sampler's first /stats
            # waiting for seconds, and the counted window must not include them
            sampler = Sampler(server, service_processes)
            probe = start_openloop(server.port, probe_rate(warm_rate), timing.duration_s,
                                   case.timeout_s, probe_warmup_s, placed.cpus["load"],
                                   probe_log, post=PROBE_BODY if case.method == "POST" else None)
            dots(probe_warmup_s + 0.1)  # the probe's window opens after its warm-up
            opened, counted_before = time.monotonic(), count.now()
            dots(timing.duration_s)
            served = count.now() - counted_before
            window_s = round(time.monotonic() - opened, 3)
            sampler.stop()
            wrk_cpu_after = measured(lambda: cpu_times([psutil.Process(wrk.pid)]).total)
            output = stop_wrk(wrk)
            probed = read_openloop(probe, case.timeout_s, out_dir / probe_log.name)
    except BaseException:  # Ctrl-C, SIGTERM, an error: no client outlives the run
        if held:
            held.process.kill()
        if count:
            count.close()
        raise
    finally:
        for client in (wrk, probe):
            if client and client.poll() is None:
                client.kill()
    drained = server.wait_idle()
    idle = held.stop() if held else None
    numbers = wrk_figures(output, out_dir / raw_name)
    run = record(case, server, knobs, placed, sampler.figures(), raw_name, threads,
                 timing.duration_s, window_s=window_s, **numbers,
                 **steady(served, window_s, probed), opening=opening,
                 probe=probe_figures(probed), wrk_cpu_s=used(wrk_cpu_before, wrk_cpu_after),
                 probe_cpu_s=probed["client_cpu_s"], idle=idle)
    # in flight when wrk stopped: served, not counted by wrk (one a connection at most); so
    # were the probe's requests it gave up on
    probe_sent = round(probed["offered_rate"] * probed["warmup_s"]) + probed["sent"]
    run["audit"] = audit(case.method, count.now(), case.connections + probe_sent - probed["ok_all"],
                         drained, wrk_ok=numbers["ok"], probe_ok=probed["ok_all"])
    count.close()
    return run


def opening_limit_s(case, timing):
    """A --workers server closes each connection after its answer, as gunicorn's sync workers
    do: wrk's connections come and go, and there is no opening to time (0)."""
    return 0 if case.knobs.get("workers") else timing.opening_limit_s


def raw_name_of(case, step):
    return f"{step}-{case.kind}-{case.method.lower()}-c{case.connections}.txt"


def wrk_figures(output, path):
    """wrk's output written to `path`; its counts over its whole run, opening included, under
    the names results.py gives them, and valid (no connection refused). Its own rate and
    percentiles, which mix the opening in, stay in its raw output."""
    path.write_text(output)
    try:
        numbers = parse_wrk(output)
    except WrkOutputError as error:
        raise SystemExit(f"bench: {error}; wrk printed:\n{output}") from None
    return {"wrk_requests": numbers["requests"], "wrk_seconds": numbers["seconds"],
            "ok": numbers["ok"], "non_2xx": numbers["non_2xx"],
            "timeouts": numbers["timeouts"], "socket_errors": numbers["socket_errors"],
            "valid": numbers["socket_errors"]["connect"] == 0}


def probe_rate(warm_rate):
    """The probe's requests a second: a small share of what the server was serving, so that
    it adds little load (50 a second is 3% of 1,700 pages, but half of what a server
    computing 10 ms a page can serve), at least one."""
    return max(1, min(PROBE_MAX_RATE, round(PROBE_SHARE * warm_rate)))


def steady(served, window_s, probed):
    """The window's throughput, as the data counted it, and its latency, from the probe; and
    Little's law over them: requests in service = throughput x mean latency, to set beside
    the connections held (it cannot exceed them by more than the probe's own)."""
    rps = round(served / window_s, 1)
    mean = probed["mean_answered_ms"]
    return {"rps": rps, "requests": served, "latency_mean_ms": mean,
            "latency_samples": probed["samples"],
            **{key: probed[key] for key in PERCENTILES},
            "littles_law_in_service": None if mean is None else round(rps * mean / 1000, 1)}


def probe_figures(probed):
    """What results.json keeps of the probe's report (openloop.py's docstring)."""
    keys = ("offered_rate", "sent", "ok", "non_2xx", "timeouts", "errors", "samples",
            "p999_ms", "p999_interval_ms", "max_ms", "mean_answered_ms", "connections_opened",
            "client_behind")
    return {key: probed[key] for key in keys}


def used(before, after):
    return None if None in (before, after) else round(after - before, 2)


def answered_connections(port, client_pid):
    """(open, answered): the connections process `client_pid` holds to `port`, and those on
    which an answer has arrived (`ss -tip` shows bytes_received), read from the OS: only the
    client's own, not the probe's, the sampler's or idle clients'. None without ss (Linux)."""
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
    """Poll, a dot a second, until the client has had an answer on `connections` connections,
    at most `limit_s` after `started` (time.monotonic()): results.json's "opening" (None where
    not within the limit, not measurable, or not watched, with limit_s 0)."""
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
