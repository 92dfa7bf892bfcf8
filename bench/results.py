"""The contract of results.json, written once: what every field of a run means and holds.
Both sides import it, and nothing of each other (tests/test_layers.py); tests/test_results.py
checks every committed run against it. A figure a platform cannot measure is None, never 0.
Types: int, float (an int is one too), str, bool, list, dict; "?" after a type: or None.
VERSION changes when a field's meaning does: 2 added latency_samples, the intervals and
INTERLEAVED runs; the committed version-1 runs were upgraded once, their intervals None.
"""

import json
from pathlib import Path

VERSION = 2
TOP = {
    "version": ("int", "of this contract: VERSION"),
    "scenario": ("str", "the --scenario run (scenarios.SCENARIOS)"),
    "x_axis": ("str", "what a run's x measures, e.g. connections"),
    "baseline": ("str?", "the series Ratio divides by at each point"),
    "machine": ("dict", "limits.describe_machine(), and limits: limits.read_limits()"),
    "settings": ("dict", "run.settings(): the flags, and notes on open files and the queue"),
    "runs": ("list", "the runs, in the order they ran"),
    # --scenario capacity only (bench/capacity.py)
    "capacity": ("dict", "{target_ms, seed, rounds, slice_warmup_s, slice_duration_s, "
                 "timeout_s, min_samples, methods: {GET, POST: {saturation: {server: req/s}, "
                 "rates, capacity: {server: capacity_at's}, ratio: {server: ratio_of's, to "
                 "sync}, client_behind_from: the lowest rate the client fell behind at}}}"),
}

# Every run, whichever client drove it.
EVERY_RUN = {
    # the case (scenarios.Case)
    "point": ("str", "e.g. \"GET / c=500, shared\": runs at one point are compared"),
    "x": ("float", "the point's value on the chart's x axis"),
    "series": ("str", "the server configuration, e.g. \"sync\", \"async --blocking\""),
    "kind": ("str", "sync or async: which {kind}_server.py ran"),
    "knobs": ("dict", "every knob as the server's /stats reported it ran with"),
    "flags": ("list", "the server's command-line flags"),
    "method": ("str", "GET or POST"),
    "connections": ("int", "wrk's -c (unused by the open-loop client)"),
    "timeout_s": ("float", "the client's timeout"),
    "placement": ("str", "shared, isolated or spread (placement.PLACEMENTS)"),
    "idle": ("dict?", "what the idle clients saw (idle.Held.stop), or None"),
    "rate": ("float", "requests a second offered on a schedule; 0: a wrk run"),
    "thread_cap": ("int", "the OS's cap on the server's threads (limits.ThreadCap); 0: none set"),
    "share": ("float", "interleaved: the point's rounds ran share x duration_s (scenarios.Case)"),
    "repeat": ("int", "which repeat, from 0"),
    "path": ("str", "/ or /items"),
    "duration_s": ("float", "the window's length, as asked"),
    "threads": ("int?", "wrk's threads (at most its connections); None: open loop"),
    "raw": ("str", "the file with the client's own output"),
    # the window's figures
    "rps": ("float?", "req/s in the window: wrk runs, served (Redis's or Postgres's count); "
            "open loop, answered"),
    "requests": ("int?", "wrk runs: served in the window; open loop: sent in the window"),
    "ok": ("int", "2xx answers the client saw (wrk: over its whole run)"),
    "non_2xx": ("int", "other answers the client saw (wrk: over its whole run)"),
    "timeouts": ("int", "requests not answered within timeout_s (wrk: over its whole run)"),
    "socket_errors": ("dict", "the client's errors by kind"),
    "latency_mean_ms": ("float?", "mean latency of the answered requests (probe or client)"),
    "p50_ms": ("float?", "latency, each request timed from when it was due; None: among timeouts"),
    "p90_ms": ("float?", "see p50_ms"),
    "p99_ms": ("float?", "see p50_ms"),
    "latency_samples": ("int", "the requests sent in the window: the percentiles rank them all"),
    "p50_interval_ms": ("list?", "[low, high]: p50's 95% interval (intervals.py), a bound "
                        "not measured None; None: not recorded (version 1)"),
    "p90_interval_ms": ("list?", "see p50_interval_ms"),
    "p99_interval_ms": ("list?", "see p50_interval_ms"),
    # the server, sampled (sampling.Sampler.figures)
    "served_in_window": ("int?", "requests the server counted in the window (/stats)"),
    "peak_threads": ("int?", "most threads the server had"),
    "peak_rss_mb": ("float?", "most memory the server held, MB"),
    "peak_in_service": ("int?", "most requests the server had in service at once (/stats)"),
    "mean_in_service": ("float?", "requests in service, sampled four times a second"),
    "peak_connections": ("int?", "most connections the server held (OS; not with light)"),
    "server_cpu_s": ("float?", "the server's CPU in the window, user + system"),
    "server_cpu_user_s": ("float?", "its user part"),
    "server_cpu_system_s": ("float?", "its system part"),
    "server_cpu_ms_per_request": ("float?", "server_cpu_s over served_in_window, in ms"),
    "server_ctx_switches_voluntary": ("int?", "over every thread (sampling.ThreadCounts)"),
    "server_ctx_switches_involuntary": ("int?", "over every thread"),
    "server_migrations": ("int?", "threads woken on another CPU than they last ran on"),
    "server_switches_per_request": ("float?", "both switches over served_in_window"),
    "server_migrations_per_request": ("float?", "migrations over served_in_window"),
    "server_cpus_seen": ("list?", "the CPUs the server's threads were seen running on"),
    "gc_pause_ms": ("float?", "the server's garbage-collection pauses in the window, total"),
    "longest_gc_pause_ms": ("float?", "the longest since the window opened"),
    "collections": ("int?", "garbage collections of any generation in the window"),
    "full_collections": ("int?", "full (oldest-generation) collections in the window"),
    # the rest of the machine, over the same window
    "postgres_cpu_s": ("float?", "Postgres's CPU (None: not ours to read)"),
    "redis_cpu_s": ("float?", "Redis's CPU"),
    "wrk_cpu_s": ("float?", "the client's CPU: wrk's, or the open-loop client's"),
    "machine_busy_s": ("float?", "what all cores spent"),
    "bench_cpu_s": ("float?", "this benchmark's own"),
    "profiler_cpu_s": ("float?", "with --profile: py-spy's, sampling the server"),
    "other_cpu_s": ("float?", "what neither the benchmark nor what it measures used"),
    "cpus": ("dict", "{server: read back from the OS, seen: its threads ran on, load: "
             "given to the clients, Postgres and Redis, services: what could not move}"),
    "audit": ("dict", "{counted, wrk_ok, [probe_ok,] allowed_extra, what, result}: the "
              "server's counts against the clients'; result ok, FAILED or UNSETTLED"),
    "valid": ("bool", "False: the client could not open its connections (or descriptors)"),
    "profile": ("dict?", "with --profile: {raw, flamegraph, samples, shares} (profiles.py)"),
}

# wrk runs (rate 0): one wrk throughout, the window after the opening (measure.py).
CLOSED_LOOP = {
    "window_s": ("float", "the window's length as measured"),
    "wrk_requests": ("int", "wrk's requests over its whole run, opening included"),
    "wrk_seconds": ("float", "wrk's whole run"),
    "opening": ("dict", "{connections, all_answered_s, answered, limit_s}: until the server "
                "had answered every connection wrk opened (measure.watch_opening)"),
    "probe": ("dict", "the probe's figures (measure.probe_figures)"),
    "probe_cpu_s": ("float", "the probe's CPU in its window"),
    "littles_law_in_service": ("float?", "rps x latency_mean_ms: requests in service"),
}

# interleaved runs (a scenario's points measured in slices): bench/interleave.py.
INTERLEAVED = {
    "window_s": ("float", "the slices' total length"),
    "slices": ("list", "[[served, seconds]] of each round, in order: the server's slices"),
    "sampled_s": ("float", "how long the server was sampled: every round, both servers' slices"),
    "wrk_requests": ("int", "wrk's requests over its whole run, opening included"),
    "wrk_seconds": ("float", "wrk's whole run, paused time included"),
    "opening": ("dict", "as CLOSED_LOOP's"),
}

# open-loop runs (rate > 0): bench/offered.py.
OPEN_LOOP = {
    "p999_ms": ("float?", "see p50_ms"),
    "max_ms": ("float?", "see p50_ms"),
    "p999_interval_ms": ("list?", "see p50_interval_ms"),
    "offered": ("dict", "the open-loop client's report (openloop.py); capacity's pooled over "
                "its slices, with samples, p50/p99_interval_ms, slices (capacity.pooled_report)"),
    "in_flight_peak": ("int", "most requests the client had in flight"),
    "waiting_upstream_peak": ("int?", "most requests the server counted in the upstream wait"),
    "held": ("dict?", "{threads, fds, maps} of the server at the window's end"),
    "kernel_stack_kb": ("int?", "the machine's kernel thread stacks grown during the run"),
    "limit_met": ("str?", "the first limit the server or the client met, or None"),
    "limit_lines": ("dict?", "the server's log lines naming a limit: {first, count}, or None"),
    "recovered_s": ("float?", "s from the clients' end to a new connection's 200 from /health; "
                    "None: not within timeout_s + offered.RECOVERY_GRACE_S"),
    "after_window": ("list", "[[s since the first request was due, served (/stats; None: no "
                     "answer), threads, CPU s]] every 2 s after the window (offered.AfterWindow)"),
    "stalled": ("dict?", "{threads, runnable: those ready to run} (Linux) of a server that "
                "had not served again; None if it did"),
    "thread_cap_how": ("str?", "how the OS capped the server's threads (limits.ThreadCap)"),
    "threads_refused": ("int?", "threads the OS refused the server (pids.events), if known"),
}

OPTIONAL = {"profile", "profiler_cpu_s", "share", "after_window", "stalled"}  # older runs lack
TYPES = {"int": int, "float": (int, float), "str": str, "bool": bool, "list": list, "dict": dict}


def fields_of(run):
    return {**EVERY_RUN, **(OPEN_LOOP if run.get("rate") else
                            INTERLEAVED if "slices" in run else CLOSED_LOOP)}


def problems(results):
    """What in `results` (results.json, parsed) breaks the contract: [] if nothing."""
    found = check(results, TOP, "results", {"capacity"})
    if results.get("version", VERSION) != VERSION:
        found.append(f"results: version {results['version']!r}, not {VERSION}")
    for n, run in enumerate(results.get("runs") or []):
        found += check(run, fields_of(run), f"run {n}", OPTIONAL)
    return found


def check(record, fields, where, optional=()):
    found = [f"{where}: no {name}" for name in fields
             if name not in record and name not in optional]
    found += [f"{where}: {name} is not in the contract" for name in record if name not in fields]
    return found + [f"{where}: {name} = {record[name]!r} is not {kind}"
                    for name, (kind, _) in fields.items()
                    if name in record and not holds(record[name], kind)]


def holds(value, kind):
    if value is None:
        return kind.endswith("?")
    kind = kind.rstrip("?")
    return isinstance(value, TYPES[kind]) and (kind == "bool" or not isinstance(value, bool))


def load(out_dir):
    """results.json of a run folder, checked: a broken contract is an error, not a page."""
    path = Path(out_dir) / "results.json"
    results = json.loads(path.read_text())
    broken = problems(results)
    if broken:
        raise ValueError(f"{path} breaks bench/results.py's contract:\n  " + "\n  ".join(broken))
    return results
