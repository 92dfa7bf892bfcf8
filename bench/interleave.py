"""Both servers at one point, compared in interleaved slices: how `fair` measures.

On a machine whose speed drifts (this one's ran the same loop from 24 to 47 million times in
6 s windows), two windows one after the other compare the hours as much as the servers.
Randomized multiple interleaved trials (Abedi and Brecht, ICPE 2017) cancel the drift: each
round gives each server one short slice, in a new random order, and the ratio is taken
within rounds, where both met the same machine.

    wrk A opens its connections ... all answered ... paused (SIGSTOP); the same for wrk B
    warm-up: each resumed for --warmup s, paused, drained
    round r (order shuffled): A resumed, slice_s, paused ... A idle | B resumed ... B idle

Each server keeps its own wrk and its own open connections throughout; a paused wrk sends
nothing, so the other server runs alone. A slice runs from the resume until the server has
answered every request it was sent (in service 0 on /stats), so no request of one server is
served in the other's slice and no time is lost draining: its rate is requests served (the
Redis counter for GET, the newest row's id for POST) over the slice's length.

What a slice cannot give: wrk's own latency and timeouts, as a paused wrk's requests age
while it is stopped. The latency is the closed loop's own, from the requests that carry the
load: each of the N connections always has one request out, so by Little's law the mean
time a request takes is N / rate, exactly. Percentiles at fixed offered rates are the
`capacity` scenario's.

Needs .venv (psycopg2, redis, psutil), as measure.py does.
"""

import http.client
import os
import signal
import time
from dataclasses import asdict

import psycopg2
import redis

from bench.each_run import dot, other_cpu, place_load, ran_with, reset_data, where_it_ran
from bench.measure import watch_opening, whole_run
from bench.placement import service_processes
from bench.scenarios import MIN_ROUNDS, SLICE_S
from bench.sampling import Sampler, ask, cpu_seconds, measured
from bench.wrk import parse_wrk, start_wrk, stop_wrk, threads_for
from scripts.reset_db import count_rows, counter_value

IDLE_POLL_S = 0.005
DRAIN_LIMIT_S = 30  # a server that has not answered its last requests by then: an error
WRK_LIMIT_S = 3600  # wrk runs until stopped; this only bounds a benchmark killed outright


class Count:
    """Requests served so far, read from the data on connections kept open: the Redis counter
    (page views), or the newest row's id (inserts: an index lookup, where count(*) would scan
    a table growing by thousands of rows a second)."""

    def __init__(self, method):
        self.method = method
        self.redis = redis.Redis.from_url(os.environ["REDIS_URL"])
        self.postgres = psycopg2.connect(os.environ["DATABASE_URL"])
        self.postgres.autocommit = True

    def now(self):
        if self.method == "GET":
            return int(self.redis.get("counter") or 0)
        with self.postgres.cursor() as cursor:
            cursor.execute("SELECT coalesce(max(id), 0) FROM item")
            return cursor.fetchone()[0]

    def close(self):
        self.redis.close()
        self.postgres.close()


class Side:
    """One server at the point: its wrk, paused between slices, a kept connection to its
    /stats, and its slices, [served, seconds] each."""

    def __init__(self, case, server, timing, cpus):
        self.case, self.server, self.slices = case, server, []
        self.knobs = ran_with(case, server)
        self.threads = threads_for(case.connections, timing.threads)
        started = time.monotonic()
        self.wrk = start_wrk(case, f"http://127.0.0.1:{server.port}/", self.threads,
                             WRK_LIMIT_S, cpus)
        self.stats = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            # a --workers server closes each connection after its answer (measure.py)
            self.opening = watch_opening(server.port, self.wrk.pid, case.connections, started,
                                         0 if case.knobs.get("workers")
                                         else timing.opening_limit_s)
            self.wrk.send_signal(signal.SIGSTOP)
            self.wait_idle()
        except BaseException:  # Ctrl-C, SIGTERM: not yet among the sides the caller stops
            self.kill()
            raise

    def kill(self):
        self.stats.close()
        if self.wrk.poll() is None:
            self.wrk.send_signal(signal.SIGCONT)
            self.wrk.kill()
            self.wrk.wait()

    def wait_idle(self):
        """Until the server has nothing in service on two readings in a row; returns when it
        was first seen so."""
        deadline, idle_since = time.monotonic() + DRAIN_LIMIT_S, None
        while True:
            stats, now = ask(self.stats), time.monotonic()
            if stats and stats["in_service"] == 0:
                if idle_since:
                    return idle_since
                idle_since = now
            else:
                idle_since = None
            if now > deadline:
                raise SystemExit(f"bench: {self.case.series} still had requests in service "
                                 f"{DRAIN_LIMIT_S} s after its wrk was paused")
            time.sleep(IDLE_POLL_S)

    def slice(self, seconds, count):
        """wrk resumed for `seconds`, paused, the server drained: [served, seconds taken]."""
        before, started = count.now(), time.monotonic()
        self.wrk.send_signal(signal.SIGCONT)
        time.sleep(seconds)
        self.wrk.send_signal(signal.SIGSTOP)
        ended = self.wait_idle()
        return [count.now() - before, round(ended - started, 4)]

    def wrk_cpu(self):
        return measured(lambda: cpu_seconds(self.wrk.pid))

    def stop(self):
        """wrk's report, once it has been resumed and interrupted."""
        self.wrk.send_signal(signal.SIGCONT)
        self.stats.close()
        return stop_wrk(self.wrk)


def measure_interleaved(cases, servers, timing, out_dir, step, order):
    """Run the cases of one point (one per server: the same request and connections)
    interleaved, in rounds for share x --duration s (at least MIN_ROUNDS; --quick: 1); return
    one run per case as results.json keeps it (bench/results.py: INTERLEAVED). `order` (a
    random.Random) shuffles each round."""
    where = cases[0].placement
    cpus, services = place_load(where)
    reset_data()
    rows_at_start = count_rows(os.environ["DATABASE_URL"])
    count, sides = Count(cases[0].method), []
    try:
        for case, server in zip(cases, servers):
            sides.append(Side(case, server, timing, cpus["load"]))
        for side in sides if timing.warmup_s else []:  # unmeasured
            side.slice(timing.warmup_s, count)
        samplers = [Sampler(side.server, service_processes) for side in sides]
        wrk_before = [side.wrk_cpu() for side in sides]
        started, quick = time.monotonic(), timing.duration_s <= 1
        budget_s = timing.duration_s * cases[0].share
        while not sides[0].slices or not quick and (
                len(sides[0].slices) < MIN_ROUNDS or time.monotonic() - started < budget_s):
            for side in order.sample(sides, len(sides)):
                side.slices.append(side.slice(SLICE_S, count))
            dot()
        for sampler in samplers:
            sampler.stop()
        wrk_after = [side.wrk_cpu() for side in sides]
        outputs = [side.stop() for side in sides]
    finally:
        for side in sides:
            side.kill()
        count.close()
    drained = all(side.server.wait_idle() for side in sides)
    runs = []
    for side, sampler, output, before, after in zip(sides, samplers, outputs, wrk_before,
                                                    wrk_after):
        case = side.case
        raw_name = f"{step}-{case.kind}-{case.method.lower()}-c{case.connections}.txt"
        (out_dir / raw_name).write_text(output)
        served, seconds = (sum(column) for column in zip(*side.slices))
        rps = round(served / seconds, 1)
        figures = sampler.figures()
        run = {**asdict(case), "flags": list(case.flags), "knobs": side.knobs,
               "path": "/items" if case.method == "POST" else "/",
               "duration_s": timing.duration_s, "window_s": round(seconds, 3),
               "threads": side.threads, **whole_run(parse_wrk(output)), **figures,
               "rps": rps, "requests": served, "slices": side.slices,
               "sampled_s": sampler.window_s,
               "latency_mean_ms": round(1000 * case.connections / rps, 1) if rps else None,
               "p50_ms": None, "p90_ms": None, "p99_ms": None, "latency_samples": 0,
               **dict.fromkeys(("p50_interval_ms", "p90_interval_ms", "p99_interval_ms")),
               "opening": side.opening,
               "wrk_cpu_s": None if None in (before, after) else round(after - before, 2),
               "placement": where, "cpus": where_it_ran(side.server, cpus, services, figures),
               "idle": None, "raw": raw_name}
        run["valid"] = run["socket_errors"]["connect"] == 0
        runs.append(run)
    verdict = audit(cases[0], runs, drained, rows_at_start)
    # the other server and its wrk ran in this window too: not another program's CPU
    both = {**runs[0], **{key: total(run[key] for run in runs)
                          for key in ("server_cpu_s", "wrk_cpu_s")}}
    for run in runs:
        run["audit"], run["other_cpu_s"] = verdict, other_cpu(both)
    return runs


def total(values):
    values = list(values)
    return None if None in values else round(sum(values), 2)


def audit(case, runs, drained, rows_at_start):
    """Both servers' pages add to one Redis counter and their inserts to one table: their sum
    against both wrks' 2xx answers, with at most one request a connection served but never
    read (in flight when wrk stopped)."""
    counted = (count_rows(os.environ["DATABASE_URL"]) - rows_at_start if case.method == "POST"
               else counter_value(os.environ["REDIS_URL"]))
    ok, extra = sum(run["ok"] for run in runs), sum(run["connections"] for run in runs)
    result = ("UNSETTLED" if not drained else "ok" if ok <= counted <= ok + extra
              else "FAILED")
    return {"counted": counted, "wrk_ok": ok, "allowed_extra": extra,
            "what": "Redis counter" if case.method == "GET" else "new rows", "result": result}
