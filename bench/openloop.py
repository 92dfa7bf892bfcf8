"""An open-loop HTTP/1.1 load generator: requests leave on schedule, answered or not.

    python -m bench.openloop --port 8081 --rate 1000 --duration 15 --timeout 20 [--warmup 2]
        [--path /items --post '{"text": "a probe"}'] [--source 127.0.0.2] [--raw]

Unlike wrk's closed loop, whose queue goes untimed (LESSON.md; "coordinated omission", Gil
Tene), request i is due at start + i/rate and timed from then: a client that falls behind adds
its lateness to the latency. After the window, what is in flight gets until its deadline.

A progress line a second on stderr, then one JSON object on stdout:
  offered_rate, duration_s, warmup_s, timeout_s: as asked. sent: requests due in the window
    (after the warm-up) = ok (2xx) + non_2xx (together: answered) + timeouts + errors
    {connect, client_fd_limit (this client out of descriptors), write, read, protocol};
    timeouts_connecting: timeouts that never got a connection (the server was not accepting).
  ok_all: 2xx answers, warm-up included (what the server counts); answered_in_window: answers
    received in the window, over duration_s: achieved_rate, what the server kept up with.
  mean_answered_ms (for Little's law). samples, p50_ms, p90_ms, p99_ms, p999_ms, max_ms, each
    with its _past_timeout and (but max) _interval_ms: see ranked.
  peak_in_flight, mean_in_flight (sampled every 0.1 s), connections_opened: in the window;
    connections_opened_in_warmup.
  send_lag_ms_p99, send_lag_ms_max: how late this client sent (a self-check; connecting is the
    server's part); client_behind: that p99 is over 10 ms, the client set the pace.
  client_cpu_s: this process's CPU in the window; client_fd_limit: its open-files limit.
  first_failure: the earliest-due request without a 2xx, warm-up included: {outcome,
    due_clock, in_flight (this client's, then)}, or None. start_clock: when the first request
    was due. Both on time.monotonic()'s clock, one for every process on Linux and macOS.
  With --raw, to merge clients (bench/offered.py): latencies_ms, every measured answer's, and
    in_flight_history, [clock, in flight] every 0.1 s.
Exits 2 on a bad flag, 130 on Ctrl-C (no partial report). Standard library only: Python 3.10+.
"""

import argparse
import asyncio
import gc
import itertools
import json
import math
import resource
import signal
import sys
import time
from collections import Counter

from bench.http1 import ERROR_KINDS, Connections, Failed
from bench.intervals import quantile_interval
from bench.limits import raise_fd_limit

SAMPLE_EVERY_S = 0.1
BEHIND_MS = 10  # send lag past this at p99: the client could not keep to its schedule


class OpenLoop:
    """The requests of one run, and what became of each: tallies only, so a request's cost
    does not grow with how many are in flight."""

    def __init__(self, port, host, path, rate, timeout_s, body=None, source=None):
        self.connections = Connections(host, port, path, body, source)
        self.rate, self.timeout_s = rate, timeout_s
        self.in_flight = set()  # the requests' tasks (asyncio keeps only weak references)
        self.window = (math.inf, math.inf)
        self.latencies, self.lags, self.samples = [], [], []  # of the measured requests
        # requests by "ok", "non_2xx", "timeout", or error: the measured ones, and all of them
        self.outcomes, self.all_outcomes = Counter(), Counter()
        self.sent = self.answered_in_window = self.peak_in_flight = 0
        self.cpu_at_start = self.opened_before = None  # when the window opens
        self.first_failure, self.history, self.start_clock = None, [], None

    async def request(self, due, measured, in_flight):
        """One request due at loop time `due`, timed from then, tallied if `measured`."""
        loop = asyncio.get_running_loop()
        lag = loop.time() - due
        progress = {"connected": False}
        try:  # wait_for, not asyncio.timeout_at: that came with Python 3.11
            status = await asyncio.wait_for(self.connections.get(progress),
                                            due + self.timeout_s - loop.time())
            outcome = "ok" if 200 <= status < 300 else "non_2xx"
        except asyncio.TimeoutError:
            outcome = "timeout" if progress["connected"] else "timeout_connecting"
        except Failed as failure:
            outcome = failure.args[0]
        done = loop.time()
        if outcome != "ok" and (self.first_failure is None
                                or due < self.first_failure["due_clock"]):
            self.first_failure = {"outcome": outcome, "due_clock": round(due, 3),
                                  "in_flight": in_flight}
        self.all_outcomes[outcome] += 1
        answered = outcome in ("ok", "non_2xx")
        if answered and self.window[0] <= done < self.window[1]:
            self.answered_in_window += 1
        if measured:
            self.lags.append(lag)
            self.outcomes[outcome] += 1
            if answered:
                self.latencies.append(done - due)

    async def send(self, first_due, count, warmup_count):
        """Start request i at first_due + i/rate, answered or not; a late wake-up starts the
        overdue ones at once. Not Poisson arrivals: random bursts would queue even below
        capacity, mixing the arrivals' variance into the server's, and tests count exactly."""
        loop = asyncio.get_running_loop()
        for i in range(count):
            due = first_due + i / self.rate
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            if i == warmup_count:  # the window opens: this process's CPU from here
                self.cpu_at_start = time.process_time()
                self.opened_before = self.connections.opened
            task = asyncio.create_task(self.request(due, i >= warmup_count, len(self.in_flight)))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
            if i >= warmup_count:
                self.sent += 1
                self.peak_in_flight = max(self.peak_in_flight, len(self.in_flight))

    async def watch(self):
        """Sample the requests in flight, print progress every second; until cancelled."""
        loop = asyncio.get_running_loop()
        start, end = self.window
        for tick in itertools.count(1):
            await asyncio.sleep(SAMPLE_EVERY_S)
            now = loop.time()
            self.history.append([round(now, 2), len(self.in_flight)])
            if start <= now < end:
                self.samples.append(len(self.in_flight))
            if tick % round(1 / SAMPLE_EVERY_S) == 0:
                phase = "warm-up" if now < start else "measuring" if now < end else "draining"
                print(f"openloop: {phase}: answered or failed {self.all_outcomes.total()}, in "
                      f"flight {len(self.in_flight)}, connections opened "
                      f"{self.connections.opened}", file=sys.stderr, flush=True)

    async def run(self, warmup_s, duration_s, raw=False):
        """Warm up, measure, wait up to timeout_s for what is still in flight; the report."""
        loop = asyncio.get_running_loop()
        warmup_count, count = round(warmup_s * self.rate), round(duration_s * self.rate)
        first_due = self.start_clock = loop.time() + 0.1  # time to get the watcher going
        self.window = (first_due + warmup_count / self.rate,
                       first_due + warmup_count / self.rate + duration_s)
        watcher = asyncio.create_task(self.watch())
        await self.send(first_due, warmup_count + count, warmup_count)
        await asyncio.sleep(max(0.0, self.window[1] - loop.time()))
        cpu_s = time.process_time() - self.cpu_at_start
        if self.in_flight:  # each ends by its own deadline: due + timeout_s
            await asyncio.wait(set(self.in_flight), timeout=self.timeout_s + 1)
        watcher.cancel()
        self.connections.close_idle()
        return self.report(warmup_s, duration_s, cpu_s, raw)

    def report(self, warmup_s, duration_s, cpu_s, raw=False):
        """The JSON object the module docstring describes."""
        lags, outcomes = ranked(self.lags), self.outcomes
        errors = {kind: outcomes[kind] for kind in ERROR_KINDS}
        # not finished a second past the last deadline, by a client too far behind: timed out
        unfinished = self.sent - sum(outcomes.values())
        return {
            "offered_rate": self.rate, "duration_s": duration_s, "warmup_s": warmup_s,
            "timeout_s": self.timeout_s, "sent": self.sent,
            "answered": outcomes["ok"] + outcomes["non_2xx"], "ok": outcomes["ok"],
            "ok_all": self.all_outcomes["ok"],
            "mean_answered_ms": (round(1000 * sum(self.latencies) / len(self.latencies), 1)
                                 if self.latencies else None),
            "non_2xx": outcomes["non_2xx"],
            "timeouts": outcomes["timeout"] + outcomes["timeout_connecting"] + unfinished,
            "timeouts_connecting": outcomes["timeout_connecting"],
            "errors": errors,
            "answered_in_window": self.answered_in_window,
            "achieved_rate": round(self.answered_in_window / duration_s, 2),
            **ranked(self.latencies, self.sent - len(self.latencies)),
            "peak_in_flight": self.peak_in_flight,
            "mean_in_flight": (round(sum(self.samples) / len(self.samples), 1)
                               if self.samples else None),
            "connections_opened": self.connections.opened - self.opened_before,
            "connections_opened_in_warmup": self.opened_before,
            "send_lag_ms_p99": lags["p99_ms"], "send_lag_ms_max": lags["max_ms"],
            "client_behind": (lags["p99_ms"] or 0) > BEHIND_MS,
            "client_cpu_s": round(cpu_s, 3),
            "client_fd_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            "first_failure": self.first_failure, "start_clock": round(self.start_clock, 3),
            **({"latencies_ms": [round(s * 1e3, 2) for s in self.latencies],
                "in_flight_history": self.history} if raw else {}),
        }


async def interruptible(run):
    """`run`, cancelled by Ctrl-C, so that asyncio.run reaps the other tasks: Python 3.10's
    raised KeyboardInterrupt in whichever task ran, printing the others' tracebacks."""
    task = asyncio.ensure_future(run)
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, task.cancel)
    return await task


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="the server's port")
    parser.add_argument("--host", default="127.0.0.1", choices=("127.0.0.1", "localhost"),
                        help="loopback only: not a tool to flood another's server")
    parser.add_argument("--source", metavar="ADDR",
                        help="connect from this 127.x.y.z: each has ephemeral ports of its own")
    parser.add_argument("--raw", action="store_true",
                        help="add latencies_ms and in_flight_history, to merge several clients")
    parser.add_argument("--path", default="/", help="what to GET (default: %(default)s)")
    parser.add_argument("--post", metavar="JSON",
                        help="POST this JSON body to --path instead of a GET")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True,
                        help="seconds of measured sending")
    parser.add_argument("--timeout", type=float, required=True,
                        help="seconds from when a request is due until it counts as timed out")
    parser.add_argument("--warmup", type=float, default=0.0,
                        help="seconds of unmeasured sending first, at the same rate")
    args = parser.parse_args(argv)
    if not (all(0 < value < math.inf for value in (args.rate, args.duration, args.timeout))
            and 0 <= args.warmup < math.inf):
        parser.error("--rate, --duration and --timeout take numbers above 0, --warmup 0 or more")
    if not (0 < args.port < 65536 and args.path.startswith("/")
            and (args.source or "127.").startswith("127.")):
        parser.error("--port is from 1 to 65535, --path starts with /, --source is 127.x.y.z")
    if round(args.duration * args.rate) < 1:
        parser.error("--rate times --duration is less than one request")
    return args


# in per mille, so that ranks are exact integers: 0.99 * 100 is 99.00000000000001 in floats
PERCENTILES = (("p50", 500), ("p90", 900), ("p99", 990), ("p999", 999), ("max", 1000))


def ranked(values_s, failures=0):
    """Percentiles that never flatter: {"samples", "p50_ms", "p50_past_timeout",
    "p50_interval_ms", ...} for PERCENTILES, over the values (s) and `failures` more ranked
    after them all (samples counts both). Nearest rank; one that falls among the failures is
    None, its past_timeout True (over 1% failed: p99 None). Each interval is the 95% one
    (intervals.quantile_interval; none for max, measured, not estimated)."""
    values = sorted(values_s)
    total = len(values) + failures
    figures = {"samples": total}
    for name, per_mille in PERCENTILES:
        rank = -(-per_mille * total // 1000)  # ceil(per_mille * total / 1000), in integers
        past = rank > len(values)
        figures[f"{name}_ms"] = None if past or rank == 0 else round(values[rank - 1] * 1e3, 2)
        figures[f"{name}_past_timeout"] = past
        if per_mille < 1000:
            figures[f"{name}_interval_ms"] = [
                None if bound is None else round(bound * 1e3, 2)
                for bound in quantile_interval(values, per_mille, failures)]
    return figures


def main(argv=None):
    args = parse_args(argv)
    # a descriptor per connection, and never more connections than requests in flight:
    # at most rate × timeout, each ending by its own deadline
    note = raise_fd_limit(math.ceil(args.rate * args.timeout) + 1)
    if note:
        print(f"openloop: {note}", file=sys.stderr)
    # A full garbage collection walks every object of every open connection: with 10,000 in
    # flight here it stopped the loop for up to 376 ms, lateness charged to every request
    # due meanwhile. Young generations only: they hold the cycles a request leaves behind.
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, 2**31 - 1)
    body = None if args.post is None else args.post.encode()
    client = OpenLoop(args.port, args.host, args.path, args.rate, args.timeout, body,
                      args.source)
    try:
        report = asyncio.run(interruptible(client.run(args.warmup, args.duration,
                                                      args.raw)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("openloop: interrupted, no report", file=sys.stderr)
        return 130
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
