"""Both servers at one point, compared in interleaved slices: how `fair` and the other
closed-loop scenarios but article and c10k measure.

On a machine whose speed drifts (this one's ran the same loop from 24 to 47 million times in
6 s windows), two windows one after the other compare the hours as much as the servers.
Randomized multiple interleaved trials (Abedi and Brecht, ICPE 2017) cancel the drift: each
round gives each server one slice, in a new random order, and the ratio is taken within
rounds. Each server keeps its own wrk and connections; a paused (SIGSTOP) wrk sends nothing,
and a slice lasts until its server has answered all it was sent, so no request of one is
served in the other's slice.

A paused wrk's requests age while it is stopped: no latency from wrk. Each of the N
connections always has one request out, so by Little's law the mean latency is N / rate.
Needs .venv (psycopg2, redis, psutil), as measure.py does.
"""

import http.client
import signal
import time

import psutil

from bench.each_run import Count, audit, dot, other_cpu, place_load, ran_with, record, reset_data
from bench.measure import (PERCENTILES, opening_limit_s, raw_name_of, used, watch_opening,
                           wrk_figures)
from bench.placement import service_processes
from bench.scenarios import MIN_ROUNDS, SLICE_S
from bench.sampling import Sampler, ask, cpu_times, measured
from bench.wrk import start_wrk, stop_wrk, threads_for

IDLE_POLL_S = 0.005
DRAIN_LIMIT_S = 30  # a server that has not answered its last requests by then: an error
WRK_LIMIT_S = 3600  # wrk runs until stopped; this only bounds a benchmark killed outright


class Side:
    """One server at the point: its wrk, paused between slices, a kept connection to its
    /stats, and its slices, [served, seconds] each."""

    def __init__(self, case, server, timing, cpus):
        self.case, self.server, self.slices = case, server, []
        self.knobs = ran_with(case, server)
        self.threads = threads_for(case.connections, timing.threads)
        # first what kill() closes (no connection yet: opened on its first request), then
        # wrk inside the try, so that a SIGTERM landing anywhere stops whatever has started
        self.stats = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        self.wrk = None
        try:
            started = time.monotonic()
            self.wrk = start_wrk(case, f"http://127.0.0.1:{server.port}/", self.threads,
                                 WRK_LIMIT_S, cpus)
            self.opening = watch_opening(server.port, self.wrk.pid, case.connections, started,
                                         opening_limit_s(case, timing))
            self.wrk.send_signal(signal.SIGSTOP)
            self.wait_idle()
        except BaseException:  # Ctrl-C, SIGTERM: not yet among the sides the caller stops
            self.kill()
            raise

    def kill(self):
        self.stats.close()
        if self.wrk and self.wrk.poll() is None:
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
        return measured(lambda: cpu_times([psutil.Process(self.wrk.pid)]).total)

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
    placed = place_load(cases[0].placement)
    reset_data()
    count, sides = Count(cases[0].method), []
    try:
        for case, server in zip(cases, servers):
            sides.append(Side(case, server, timing, placed.cpus["load"]))
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
        drained = all(side.server.wait_idle() for side in sides)
        counted = count.now()
    finally:
        for side in sides:
            side.kill()
        count.close()
    runs = []
    for side, sampler, output, before, after in zip(sides, samplers, outputs, wrk_before,
                                                    wrk_after):
        case = side.case
        raw_name = raw_name_of(case, step)
        served, seconds = (sum(column) for column in zip(*side.slices))
        rps = round(served / seconds, 1)
        run = record(case, side.server, side.knobs, placed, sampler.figures(), raw_name,
                     side.threads, timing.duration_s, window_s=round(seconds, 3),
                     **wrk_figures(output, out_dir / raw_name), rps=rps, requests=served,
                     slices=side.slices, sampled_s=sampler.window_s,
                     latency_mean_ms=round(1000 * case.connections / rps, 1) if rps else None,
                     latency_samples=0, **dict.fromkeys(PERCENTILES),
                     opening=side.opening, wrk_cpu_s=used(before, after))
        runs.append(run)
    # both servers' pages add to one Redis counter and their inserts to one table: their sum
    # against both wrks', with one request a connection in flight when wrk stopped
    verdict = audit(cases[0].method, counted, sum(run["connections"] for run in runs), drained,
                    wrk_ok=sum(run["ok"] for run in runs))
    # the other server and its wrk ran in this window too: not another program's CPU
    both = {**runs[0], **{key: total(run[key] for run in runs)
                          for key in ("server_cpu_s", "wrk_cpu_s")}}
    for run in runs:
        run["audit"], run["other_cpu_s"] = verdict, other_cpu(both)
    return runs


def total(values):
    values = list(values)
    return None if None in values else round(sum(values), 2)
