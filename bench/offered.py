"""One run at a fixed offered rate (waits, laptop, collector): bench/openloop.py sends request i
at i / rate, answered or not, and times it from then, while the server is sampled; then the
limits the run met are named. With a slow upstream (--io-delay-ms), rate x wait requests are
in flight at once (Little's law): a thread each in the sync server, a coroutine each in async.
Needs .venv (psycopg2, redis, psutil), as measure.py does.
"""

import heapq
from contextlib import closing
import http.client
import math
import sys
import threading
import time
from pathlib import Path

import psutil

from bench.each_run import (Count, audit, dots, place_load, ran_with, read_openloop,
                            record, reset_data, start_openloop)
from bench.idle import grown, kernel_stack_kb
from bench.launch import wait_until
from bench.openloop import ranked
from bench.limits import held_by
from bench.placement import service_processes
from bench.sampling import Sampler, ask, cpu_times, measured

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
    """Run `case` against the running `server`; the run as results.json keeps it (OPEN_LOOP's
    fields too). `timing`: run.Timing."""
    placed = place_load(case.placement)
    reset_data()
    knobs = ran_with(case, server)
    wait_s = case.knobs.get("io_delay_ms", 0) / 1000
    warmup_s = wait_s + timing.warmup_s  # long enough for rate x wait to be in flight
    log_mark, kernel_before = len(server.log()), kernel_stack_kb()
    raw_name = f"{step}-{case.kind}-openloop-r{case.rate:g}.txt"
    sources = client_sources(case.most_connections)

    def start_clients(log):
        for source in sources:
            yield start_openloop(server.port, case.rate / len(sources), timing.duration_s,
                                 case.timeout_s, warmup_s, placed.cpus["load"], log,
                                 source=source)
    with closing(Count(case.method)) as count:  # open_loop returns with the server idle
        window = open_loop(server, out_dir / raw_name, start_clients, warmup_s,
                           timing.duration_s, case.timeout_s, watched=True)
        counted = count.now()
    report = merged(window["reports"])
    sampler = window["sampler"]
    recovered_s = window["recovered_s"]
    log = server.log()[log_mark:]  # the run's own lines, read once
    run = record(case, server, knobs, placed, sampler.figures(), raw_name, None,
                 timing.duration_s, **client_figures(report), wrk_cpu_s=report["client_cpu_s"],
                 offered=report, in_flight_peak=report["peak_in_flight"],
                 waiting_upstream_peak=(sampler.last_stats or {}).get("peak_waiting_upstream"),
                 held=window["held"], kernel_stack_kb=grown(kernel_before, window["kernel_after"]),
                 limit_met=limit_met(log, report), limit_lines=limit_lines(log),
                 recovered_s=recovered_s, after_window=window["after_window"],
                 stalled=None if recovered_s is not None else thread_states(server.pid),
                 thread_cap_how=server.thread_cap and server.thread_cap.how,
                 threads_refused=server.thread_cap and server.thread_cap.refused())
    # the window's successes, and at most every warm-up request and every request the client
    # gave up on more (the server may still have served it)
    extra = round(case.rate * warmup_s) + report["timeouts"] + sum(report["errors"].values())
    run["audit"] = audit(case.method, counted, extra, wrk_ok=report["ok"])
    run["valid"] = not report["errors"].get("client_fd_limit")
    return run


def open_loop(server, log_path, start_clients, warmup_s, duration_s, timeout_s, shown=True,
              watched=False):
    """The open-loop window of a run (measure_offered) or of a capacity slice: a connection to
    the server's /stats kept from before the load (at a limit, no new one gets in), the
    clients start_clients(log) yields, their warm-up, the server sampled (light) for
    duration_s, their reports once they have their last answers, then the server given
    timeout_s + RECOVERY_GRACE_S to serve /health again, and let go idle. shown: a dot a
    second. watched: also what the server holds as the window closes (held, kernel_after)
    and does while the clients wait (after_window). A dict of it all, with the sampler."""
    stats = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    stats.connect()
    with open(log_path, "a") as log:
        clients = []
        try:
            for client in start_clients(log):  # one by one: each is killed if interrupted
                clients.append(client)
            # a request a second keeps it open past the server's idle timeout
            dots(warmup_s + 0.3, each_second=lambda: ask(stats), shown=shown)
            window = {"sampler": Sampler(server, service_processes, light=True, conn=stats)}
            dots(duration_s, shown=shown)
            window["sampler"].stop()
            if watched:
                window.update(held=measured_held(server.pid), kernel_after=kernel_stack_kb())
                after = AfterWindow(server.pid, stats)
            window["reports"] = [read_openloop(client, timeout_s, log_path) for client in clients]
            if watched:
                window["after_window"] = after.stop(min(r["start_clock"]
                                                        for r in window["reports"]))
        finally:  # Ctrl-C, SIGTERM, an error: no client outlives the window
            for client in clients:
                if client.poll() is None:
                    client.kill()
    stats.close()
    window["recovered_s"] = recovery(server, timeout_s + RECOVERY_GRACE_S)
    server.wait_idle()
    return window


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
    """Several clients' reports (openloop.py's, with --raw) as one: combined, with the
    earliest failure and what all clients had in flight then (their samples, 0.1 s apart)."""
    if len(reports) == 1:
        return reports[0]
    histories = [r.pop("in_flight_history") for r in reports]
    summed = combined(reports, SUMMED)  # first: it takes every report's latencies out
    report = {**reports[0], **summed, "clients": len(reports),
              "peak_in_flight": peak_in_flight(histories),
              "start_clock": min(r["start_clock"] for r in reports)}
    for key in ("send_lag_ms_p99", "send_lag_ms_max"):
        report[key] = max(r[key] or 0 for r in reports)
    failures = [r["first_failure"] for r in reports if r["first_failure"]]
    report["first_failure"] = min(failures, key=lambda f: f["due_clock"], default=None)
    if report["first_failure"]:
        report["first_failure"]["in_flight"] = in_flight_at(
            histories, report["first_failure"]["due_clock"])
    return report


def combined(reports, keys):
    """Open-loop reports with --raw as one: `keys` and errors added up, every answer's latency
    ranked again (openloop.ranked: percentiles, their count and intervals)."""
    latencies = [ms / 1000 for r in reports for ms in r.pop("latencies_ms")]
    return {**{key: round(sum(r[key] or 0 for r in reports), 3) for key in keys},
            "errors": {kind: sum(r["errors"][kind] for r in reports)
                       for kind in reports[0]["errors"]},
            **ranked(latencies, sum(r["sent"] for r in reports) - len(latencies)),
            "mean_answered_ms": (round(1000 * sum(latencies) / len(latencies), 1)
                                 if latencies else None),
            "client_behind": any(r["client_behind"] for r in reports)}


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


class AfterWindow:
    """While the clients wait for their last answers: every 2 s, the server's served count
    (/stats on the connection kept from before the load; None: no answer in time), threads
    and CPU seconds. A server that stops answering while it burns CPU shows here."""

    def __init__(self, pid, conn):
        self.pid, self.conn, self.samples = pid, conn, []
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.watch, daemon=True)
        self.thread.start()

    def watch(self):
        process = measured(lambda: psutil.Process(self.pid))
        while not self.done.wait(2):
            stats = ask(self.conn)
            threads = cpu = None
            if process:
                threads = measured(process.num_threads)
                cpu = measured(lambda: round(cpu_times([process]).total, 2))
            self.samples.append([time.monotonic(), stats and stats["served"], threads, cpu])

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


def limit_lines(log):
    """The server's own lines that name a limit: the first, and how many in all."""
    lines = [line for line in log.splitlines() if any(sign in line for sign in LIMIT_SIGNS)]
    return {"first": lines[0][:200], "count": len(lines)} if lines else None


def limit_met(log, report):
    """The first limit the run met, as the server's log or the client's errors name it."""
    met = [limit for line in log.splitlines() for sign, limit in LIMIT_SIGNS.items()
           if sign in line]
    if met:
        return f"server: {met[0]}"
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

