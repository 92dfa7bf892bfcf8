"""What each server counts and says about itself: the counters behind GET /stats, the garbage
collector's pauses and its --gc, and one log line when Postgres or Redis goes and comes back.

Nothing here waits on the network, Postgres or Redis; both servers use it as it is.
"""

import gc
import logging
import os
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

from common import REDIS_ERRORS, PostgresDown, json_bytes

# --gc thresholds: a young collection every 50,000 net allocations instead of 700, a middle
# one every 20 young ones (not 10), a full one every 10 middle ones (as by default): about
# 140 times rarer, each one walking more. gc.set_threshold's docs describe the three numbers.
RELAXED_GC_THRESHOLDS = (50_000, 20, 10)


def tune_collector(mode):
    """--gc, once start-up is done: "default" leaves the collector as Python sets it;
    "freeze" moves every object start-up made (modules, the template, the pools) out of the
    collector's sight, so no collection walks them again (gc.freeze, Python 3.7+);
    "thresholds" makes it collect less often (RELAXED_GC_THRESHOLDS), each time more.
    Neither turns it off: cycles a request leaves behind are still freed."""
    if mode == "freeze":
        gc.collect()  # what start-up left as garbage is freed, not frozen for good
        gc.freeze()
    elif mode == "thresholds":
        gc.set_threshold(*RELAXED_GC_THRESHOLDS)


class Stats:
    """Counters behind GET /stats, and the outages the log tells of (Outages, below). The
    lock is for the sync server's many threads.

    The peaks are the most at once since start-up or since reset_peaks(), so a benchmark that
    resets them before a run sees that run's peaks alone. waiting_upstream counts page views
    inside the --io-delay-ms wait: a blocking call in the event loop holds it at 1. The
    garbage collector's pauses are timed too: while one runs, no Python code runs, in any
    thread or task, and its work grows with the objects a server holds.
    """

    def __init__(self, knobs=None, log=None):
        self._lock = threading.Lock()
        self.knobs = knobs or {}
        self.outages = Outages(log or logging.getLogger(__name__))
        self.in_service = 0
        self.peak_in_service = 0
        self.waiting_upstream = 0
        self.peak_waiting_upstream = 0
        self.served = 0
        self.pg_connections_opened = 0
        self.collections = 0
        self.full_collections = 0
        self.gc_pause_ms = 0.0
        self.longest_gc_pause_ms = 0.0
        self._collecting_since = None
        gc.callbacks.append(self._collection)  # made once, in new_state(), not at import

    @contextmanager
    def serving(self, path):
        """Around one request: in service until it ends, and watched by the outages
        (Outages.watch). GET /stats and its reset report the counters; they are not counted."""
        counted = not path.startswith("/stats")
        if counted:
            with self._lock:
                self.in_service += 1
                self.peak_in_service = max(self.peak_in_service, self.in_service)
        try:
            with self.outages.watch(path):  # one log line when a service goes, one back
                yield
        finally:
            if counted:
                with self._lock:
                    self.in_service -= 1
                    self.served += 1

    @contextmanager
    def upstream_wait(self):
        with self._lock:
            self.waiting_upstream += 1
            self.peak_waiting_upstream = max(self.peak_waiting_upstream, self.waiting_upstream)
        try:
            yield
        finally:
            with self._lock:
                self.waiting_upstream -= 1

    def connection_opened(self):
        with self._lock:
            self.pg_connections_opened += 1

    def _collection(self, phase, info):
        """gc.callbacks: time each collection. No lock: the collector may run inside a
        `with self._lock` block of this very thread, and the GIL is held throughout."""
        if phase == "start":
            self._collecting_since = time.perf_counter()
            return
        pause_ms = (time.perf_counter() - self._collecting_since) * 1000
        self.gc_pause_ms += pause_ms
        self.longest_gc_pause_ms = max(self.longest_gc_pause_ms, pause_ms)
        self.collections += 1
        self.full_collections += info["generation"] == 2

    def report(self):
        """The counters as GET /stats sends them (JSON bytes); reading changes nothing."""
        with self._lock:
            return json_bytes({
                "in_service": self.in_service, "peak_in_service": self.peak_in_service,
                "waiting_upstream": self.waiting_upstream,
                "peak_waiting_upstream": self.peak_waiting_upstream,
                "threads": threading.active_count(), "served": self.served, "pid": os.getpid(),
                "pg_connections_opened": self.pg_connections_opened, "knobs": self.knobs,
                "collections": self.collections, "full_collections": self.full_collections,
                # to the microsecond: a reader's difference of two totals is then as exact
                # as the longest pause it sets beside it
                "gc_pause_ms": round(self.gc_pause_ms, 3),
                "longest_gc_pause_ms": round(self.longest_gc_pause_ms, 3)})

    def reset_peaks(self):
        """Start both peaks again from what is in service now (POST /stats/reset-peaks)."""
        with self._lock:
            self.peak_in_service = self.in_service
            self.peak_waiting_upstream = self.waiting_upstream
            self.longest_gc_pause_ms = 0.0


@dataclass
class Outage:
    """One service's outage, from its first refused request until a success ends it."""
    since: float  # time.monotonic() of its first refusal
    refused: int = 0
    paths: set = field(default_factory=set)  # the paths refused because of it


class Outages:
    """When Postgres or Redis stopped answering and when it answered again: two log lines an
    outage, the first with the driver's reason, the second with how many requests it cost,
    and nothing per request between them (with --access-log, the access log has each 503).

    A path refused because of a service calls that service on every request, so a later
    success on that path has reached it: the outage is over. Only a success during which the
    service refused no request counts: as Postgres stops, requests in flight still succeed
    on connections it has not ended yet. The lock is for the sync server's threads.
    """

    def __init__(self, log):
        self.log = log
        self._lock = threading.Lock()
        self._open = {}  # service -> its Outage, until it answers again
        self._refusals = {"Postgres": 0, "Redis": 0}  # since start-up

    @contextmanager
    def watch(self, path):
        """Around one request: PostgresDown or a Redis error counts as a refusal and goes on
        to the caller; a success ends the outages its path was refused for."""
        before = dict(self._refusals)  # without the lock: a stale count only delays the end
        try:
            yield
        except PostgresDown as error:
            self.refused("Postgres", path, error)
            raise
        except REDIS_ERRORS as error:
            self.refused("Redis", path, error)
            raise
        if self._open:  # most requests find none open, and take no lock
            self.answered(path, before)

    def refused(self, service, path, error):
        with self._lock:  # held while logging: an outage's two lines never change places
            self._refusals[service] += 1
            if service not in self._open:
                self._open[service] = Outage(time.monotonic())
                self.log.warning("%s unreachable: %s", service, one_line(error))
            self._open[service].refused += 1
            self._open[service].paths.add(path)

    def answered(self, path, before):
        with self._lock:
            for service, outage in list(self._open.items()):
                if path in outage.paths and self._refusals[service] == before[service]:
                    del self._open[service]
                    self.log.warning("%s back after %.1f s; requests refused meanwhile: %d",
                                     service, time.monotonic() - outage.since, outage.refused)


def one_line(error):
    """A driver's reason in one line (psycopg2's run over three), named by its class."""
    cause = error.__cause__ or error  # PostgresDown carries the driver's error
    lines = [line.strip() for line in str(cause).splitlines() if line.strip()]
    return f"{type(cause).__name__}: {lines[0] if lines else ''}".rstrip(": ")

