"""One run at a fixed offered rate: bench/openloop.py sends requests on a schedule, answered or
not, while the server is sampled as in a wrk run; then the limits the run met are named.

wrk keeps N connections busy, each sending its next request when the last is answered (a
closed loop): it measures capacity, and a server that slows down slows wrk down with it.
Users arrive on their own schedule: here request i is due at i / rate and is timed from
then. With a slow upstream (--io-delay-ms), rate x wait requests are in flight at once
(Little's law): a thread each in the sync server, a coroutine each in the async one.

Needs .venv (psycopg2, redis, psutil), as measure.py does.
"""

import heapq
import http.client
import math
import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

import psutil

from bench.each_run import (dots, other_cpu, place_load, ran_with, read_openloop, reset_data,
                            start_openloop, where_it_ran)
from bench.idle import grown, kernel_stack_kb
from bench.launch import wait_until
from bench.openloop import ranked
from bench.limits import held_by
from bench.placement import service_processes
from bench.sampling import Sampler, ask, cpu_seconds, measured
from scripts.reset_db import counter_value
# What a server's log says when it meets a limit, and the limit it names.
LIMIT_SIGNS = {
    "can't start new thread": "threads: the OS refused to start one",
    "Too many open files": "open files (RLIMIT_NOFILE)",
    "MemoryError": "memory",
}
# The connections one client process holds at most: under its own open-files limit and
# under half of the ephemeral ports of one source address (bench/limits.py), past which
# Linux's connect() slows to a crawl. More in flight: more clients, each from an address
# of its own (Linux routes all of 127.0.0.0/8 to loopback; macOS only 127.0.0.1).
PER_CLIENT = 10_000
# After the load, a server may still hold requests it accepted late, whose clients gave up:
# each can take up to the case's timeout. This long more, and it has not recovered.
RECOVERY_GRACE_S = 10


def measure_offered(case, server, timing, out_dir, step):
    """Run `case` (case.rate requests a second, each waiting case.knobs["io_delay_ms"]) against
    the running `server`; return the run as results.json keeps it (bench/results.py: every
    run's fields and OPEN_LOOP's). `timing` is run.Timing."""
    where = case.placement
    cpus, services = place_load(where)
    reset_data()
    knobs = ran_with(case, server)
    wait_s = case.knobs.get("io_delay_ms", 0) / 1000
    warmup_s = wait_s + timing.warmup_s  # long enough for rate x wait to be in flight
    log_mark, kernel_before = len(server.log()), kernel_stack_kb()
    raw_name = f"{step}-{case.kind}-openloop-r{case.rate:g}.txt"
    stats = kept_connection(server.port)  # opened before the load: at a limit, none gets in
    sources = client_sources(case.most_connections)
    with open(out_dir / raw_name, "w") as progress:
        clients = [start_openloop(server.port, case.rate / len(sources), timing.duration_s,
                                  case.timeout_s, warmup_s, cpus["load"], progress,
                                  source=source) for source in sources]
        # a request a second keeps it open past the server's idle timeout; the window opens
        dots(warmup_s + 0.3, each_second=lambda: ask(stats))
        sampler = Sampler(server, service_processes, light=True, conn=stats)
        dots(timing.duration_s)
        sampler.stop()
        held, kernel_after = measured_held(server.pid), kernel_stack_kb()
        after = AfterWindow(server.pid, stats)
        report = merged([read_openloop(client, case.timeout_s, out_dir / raw_name)
                         for client in clients])
        after_window = after.stop(report["start_clock"])
    stats.close()
    recovered_s = recovery(server, case.timeout_s + RECOVERY_GRACE_S)
    server.wait_idle()
    figures = sampler.figures()
    log = server.log()[log_mark:]  # the run's own lines, read once
    run = {**asdict(case), "flags": list(case.flags), "knobs": knobs, "path": "/",
           "duration_s": timing.duration_s, "threads": None, **client_figures(report),
           **figures, "wrk_cpu_s": report["client_cpu_s"], "placement": where,
           "cpus": where_it_ran(server, cpus, services, figures),
           "idle": None, "raw": raw_name, "offered": report,
           "in_flight_peak": report["peak_in_flight"],
           "waiting_upstream_peak": (sampler.last_stats or {}).get("peak_waiting_upstream"),
           "held": held, "kernel_stack_kb": grown(kernel_before, kernel_after),
           "limit_met": limit_met(log, report),
           "limit_lines": limit_lines(log), "recovered_s": recovered_s,
           "after_window": after_window,
           "stalled": None if recovered_s is not None else thread_states(server.pid),
           "thread_cap_how": server.thread_cap and server.thread_cap.how,
           "threads_refused": server.thread_cap and server.thread_cap.refused()}
    run["other_cpu_s"] = other_cpu(run)
    run["audit"] = audit(case, report, warmup_s)
    run["valid"] = not report["errors"].get("client_fd_limit")
    return run


def client_sources(connections):
    """One source address per client: [None] (the OS's choice) for one client, else
    127.0.0.2, 127.0.0.3, ... on Linux, and 127.0.0.1 each elsewhere."""
    count = math.ceil(connections / PER_CLIENT)
    if count <= 1:
        return [None]
    return [f"127.0.0.{2 + n}" if sys.platform == "linux" else "127.0.0.1"
            for n in range(count)]


SUMMED = ("offered_rate", "sent", "answered", "ok", "ok_all", "non_2xx", "timeouts",
          "timeouts_connecting", "answered_in_window", "achieved_rate", "connections_opened",
          "connections_opened_in_warmup", "client_cpu_s", "mean_in_flight")


def merged(reports):
    """Several clients' reports (openloop.py's, with --raw) as one: counts added up,
    percentiles over every client's answers (ranked again: their count and intervals too),
    the earliest failure with what all clients had in flight then (each client's last
    sample before it, 0.1 s apart)."""
    if len(reports) == 1:
        return reports[0]
    first, latencies = reports[0], [ms / 1000 for r in reports for ms in r.pop("latencies_ms")]
    histories = [r.pop("in_flight_history") for r in reports]
    report = {**first, **{key: round(sum(r[key] or 0 for r in reports), 3) for key in SUMMED},
              "errors": {kind: sum(r["errors"][kind] for r in reports) for kind in first["errors"]},
              "clients": len(reports)}
    report.update(ranked(latencies, report["sent"] - len(latencies)))
    report["mean_answered_ms"] = (round(1000 * sum(latencies) / len(latencies), 1)
                                  if latencies else None)
    report["peak_in_flight"] = peak_in_flight(histories)
    report["send_lag_ms_p99"] = max(r["send_lag_ms_p99"] or 0 for r in reports)
    report["send_lag_ms_max"] = max(r["send_lag_ms_max"] or 0 for r in reports)
    report["client_behind"] = any(r["client_behind"] for r in reports)
    report["start_clock"] = min(r["start_clock"] for r in reports)
    failures = [r["first_failure"] for r in reports if r["first_failure"]]
    report["first_failure"] = min(failures, key=lambda f: f["due_clock"], default=None)
    if report["first_failure"]:
        report["first_failure"]["in_flight"] = in_flight_at(
            histories, report["first_failure"]["due_clock"])
    return report


def peak_in_flight(histories):
    """The most all clients had in flight at once, at the first client's samples: each
    client's last sample up to then, in one pass over every sample in time order (a sample
    of another client at the same clock counts as before it)."""
    current, peak = [0] * len(histories), 0
    samples = ([(at, client == 0, client, n) for at, n in history]
               for client, history in enumerate(histories))
    for _, first, client, n in heapq.merge(*samples):
        current[client] = n
        if first:
            peak = max(peak, sum(current))
    return peak


def in_flight_at(histories, clock):
    """What every client had in flight at `clock`: each one's last sample up to then."""
    return sum(next((n for at, n in reversed(history) if at <= clock), 0)
               for history in histories)


def kept_connection(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.connect()
    return conn


class AfterWindow:
    """While the clients wait for their last answers: every 2 s, the server's served count
    (/stats on the connection kept from before the load; None when it does not answer within
    its timeout), its threads and its CPU seconds. A server that stops answering while it
    burns CPU shows here; a count costs one request and two small /proc reads."""

    def __init__(self, pid, conn):
        self.pid, self.conn, self.samples = pid, conn, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self):
        process = measured(lambda: psutil.Process(self.pid))
        while not self.done.wait(2):
            stats = ask(self.conn)
            self.samples.append([time.monotonic(), stats and stats["served"],
                                 measured(process.num_threads) if process else None,
                                 measured(lambda: round(cpu_seconds(self.pid), 2))])

    def stop(self, start_clock):
        """[[s since the first request was due, served, threads, CPU s], ...]."""
        self.done.set()
        self.thread.join()
        return [[round(at - start_clock, 1), *rest] for at, *rest in self.samples]


def thread_states(pid):
    """{threads, runnable}: the server's threads, and how many of them the kernel had ready
    to run (state R in /proc/PID/task/*/stat); None where unreadable (not Linux)."""
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return None
    states = []
    for task in tasks:
        try:
            states.append(Path(task, "stat").read_text().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            pass  # ended meanwhile
    return {"threads": len(states), "runnable": states.count("R")}


def recovery(server, within_s):
    """Seconds from the clients' end until a new connection got a 200 from /health: the
    server serves again once the load has gone; None if not within `within_s`."""
    start = time.monotonic()
    def healthy():
        try:
            return server.get("/health", timeout=2)[0] == 200
        except (OSError, http.client.HTTPException):
            return False
    return round(time.monotonic() - start, 1) if wait_until(healthy, within_s, 0.2) else None


def client_figures(report):
    """The open-loop report under the names the summary reads for a wrk run."""
    return {"requests": report["sent"],
            "rps": report["achieved_rate"], "ok": report["ok"], "non_2xx": report["non_2xx"],
            "timeouts": report["timeouts"], "socket_errors": report["errors"],
            "latency_mean_ms": None, "latency_samples": report["samples"],
            **{key: report[key] for key in ("p50_ms", "p90_ms", "p99_ms", "p999_ms", "max_ms",
                                            "p50_interval_ms", "p90_interval_ms",
                                            "p99_interval_ms", "p999_interval_ms")}}


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


def limit_lines(log):
    """The server's own lines that name a limit: the first, and how many in all."""
    lines = [line for line in log.splitlines() if any(sign in line for sign in LIMIT_SIGNS)]
    return {"first": lines[0][:200], "count": len(lines)} if lines else None


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
    if report.get("timeouts_connecting"):
        return f"connections not accepted ({report['timeouts_connecting']:,} timed out)"
    return None


def measured_held(pid):
    try:
        return held_by(pid)
    except OSError:
        return None

