"""What each --scenario runs: its Cases, each one run against one server configuration.
Cases that share a `point` (the x axis: connections, delay, CPU time) are compared.
"""

from dataclasses import dataclass, field, replace
from typing import Callable

from bench.launch import KINDS
from bench.text import label_of
from config import GC_MODES


@dataclass(frozen=True)
class Case:
    """One run against one server configuration; bench/results.py's EVERY_RUN says what each
    field means. knobs: only those set away from the server's defaults, named as /stats
    names them (`flags` is made from them; a run records every knob the server reports).
    placement None: the run's --placement, or the default, as run.plan_cases resolves it."""

    point: str
    x: float
    series: str
    kind: str
    knobs: dict = field(default_factory=dict, hash=False)
    method: str = "GET"
    connections: int = 500
    timeout_s: int = 2
    placement: str = None
    idle: int = 0
    rate: float = 0
    thread_cap: int = 0
    share: float = 1

    @property
    def most_connections(self):
        """wrk's and the idle clients', or for an open loop every request until its timeout."""
        return round(self.rate * self.timeout_s) if self.rate else self.connections + self.idle

    @property
    def flags(self):
        """workers=2 is --workers 2, blocking=True is --blocking (CONTRIBUTING.md)."""
        flags = []
        for name, value in self.knobs.items():
            flag = "--" + name.replace("_", "-")
            flags += [flag] if value is True else [flag, str(value)]
        return tuple(flags)


@dataclass(frozen=True)
class Scenario:
    """plan(connections, placement) -> the Cases in the order they run (placement: the run's
    --placement or None), its docstring the scenario's line in --help; baseline: the series
    the Ratio column divides by at each point."""

    plan: Callable
    x_axis: str
    baseline: str = "sync"
    quick: Callable = None  # quick(cases) -> the cases --quick runs; None: all of them
    duration_s: int = 10  # the defaults of --duration, --warmup and --repeat
    warmup_s: float = 2
    interleaved: bool = False  # a point's servers compared in slices (bench/interleave.py)
    repeat: int = 1
    # runner(args, cases, out_dir, run_plan) -> (runs, more top-level fields of results.json),
    # for a scenario that plans as it measures (capacity)
    runner: Callable = None


def timeout_for(connections):
    """The article's runs: wrk's default 2 s at 500 connections, --timeout 5s at 1500."""
    return 5 if connections >= 1500 else 2


FAIR_PLACEMENTS = ("shared", "isolated")
SLICE_S = 0.8  # interleaved: each server's load in a round, before it drains
MIN_ROUNDS = 6  # interleaved: rounds at a point however long they take (intervals.py)


def fair(connections, placement=None):
    """The article's runs on equal terms (same pools, keep-alive, one process each), first as
    the OS places every process (shared, as on a laptop), then with the server alone on a
    core (isolated, the control): GET / and POST /items at the first connection count, GET /
    at the others too where shared. A --placement runs them all there instead."""
    cases = []
    for n, where in enumerate([placement] if placement else FAIR_PLACEMENTS):
        first, *more = connections
        requests = [("GET", first), ("POST", first)] + [("GET", c) for c in more if n == 0]
        for method, c in requests:
            point = f"{label_of(method)} c={c}, {where}"
            cases += [Case(point, c, kind, kind, method=method, connections=c,
                           timeout_s=timeout_for(c), placement=where, share=fair_share(
                               method, c, first, where)) for kind in KINDS]
    return cases


def fair_share(method, connections, first, where):
    """The rounds' time where it counts: 2.5 shares to the control, GET / isolated, whose
    ratio is nearest 1.00x and so needs the narrowest interval; MIN_ROUNDS only past the first
    connection count, where each round waits for 1,500 answers twice and the gap is wide."""
    if connections != first:
        return 0
    return 2.5 if (method, where) == ("GET", "isolated") else 1


ARTICLE_KNOBS = {"workers": 2, "connect_per_request": True}
ARTICLE_SERIES = "sync --workers 2 --connect-per-request"


def article(connections, _placement=None):
    """The article's set-up: 2 sync workers and a new Postgres connection per request, each
    knob alone and both, against the sync and async servers on equal terms."""
    configs = ([("sync", ARTICLE_KNOBS)] + [("sync", {name: value})
                                           for name, value in ARTICLE_KNOBS.items()]
               + [(kind, {}) for kind in KINDS])
    cases = [Case(f"GET / c={c}", c, kind, kind, knobs, connections=c, timeout_s=timeout_for(c))
             for c in connections for kind, knobs in configs]
    # each series named by its server and flags: ARTICLE_SERIES has both knobs
    return [replace(case, series=" ".join((case.kind, *case.flags))) for case in cases]


SWEEP_CONNECTIONS = (10, 50, 100, 500, 1500)


def sweep(_connections, _placement=None):
    """GET / from a handful of connections to far more than the pools."""
    return [Case(f"GET / c={c}", c, kind, kind, connections=c, timeout_s=timeout_for(c))
            for c in SWEEP_CONNECTIONS for kind in KINDS]


IO_DELAYS_MS = (0, 10, 50, 200)
BOUNDED_WORKERS = 32


def io_delay(_connections, _placement=None):
    """Each view also waits on a slow upstream: waiting is what an event loop overlaps."""
    return [Case(f"delay {delay} ms", delay, series, series.split()[0],
                 {"io_delay_ms": delay, **more})
            for delay in IO_DELAYS_MS
            for series, more in (("sync", {}), (f"sync --workers {BOUNDED_WORKERS}",
                                                {"workers": BOUNDED_WORKERS}), ("async", {}))]


CPU_MS = (0, 2, 10)
CPU_CONNECTIONS = 100


def cpu(_connections, _placement=None):
    """Each view also computes: no single-process concurrency model overlaps that."""
    return [Case(f"cpu {ms} ms", ms, kind, kind, {"cpu_ms": ms}, connections=CPU_CONNECTIONS,
                 timeout_s=5) for ms in CPU_MS for kind in KINDS]


BLOCKING_DELAY_MS = 10
BLOCKING_CONNECTIONS = 100


def blocking(_connections, _placement=None):
    """One time.sleep in the event loop: every connection waits behind it."""
    knobs = {"io_delay_ms": BLOCKING_DELAY_MS}
    return [Case(f"delay {BLOCKING_DELAY_MS} ms", BLOCKING_DELAY_MS, series, series.split()[0],
                 {**knobs, **more}, connections=BLOCKING_CONNECTIONS)
            for series, more in (("async", {}), ("async --blocking", {"blocking": True}),
                                 ("sync", {}))]


PLACEMENT_CONNECTIONS = 500


def placement(_connections, _placement=None):
    """GET / at 500 connections with the server isolated on a core, spread over cores, and
    sharing them with the load: what the scheduler does to each model."""
    from bench.placement import PLACEMENTS
    return [Case(f"{where} c={PLACEMENT_CONNECTIONS}", n, kind, kind, placement=where,
                 connections=PLACEMENT_CONNECTIONS) for n, where in enumerate(PLACEMENTS)
            for kind in KINDS]


IDLE_CONNECTIONS = (0, 1000, 5000, 10000)
IDLE_TIMEOUT_S = 300  # longer than any run: no server closes an idle connection mid-run
ACTIVE_CONNECTIONS = 50


def c10k(_connections, _placement=None):
    """Up to 10,000 mostly idle connections (a request a minute each) held open while 50
    active ones are measured: what each idle client costs each model."""
    return [Case(f"idle {idle:,}", idle, kind, kind, {"idle_timeout_s": IDLE_TIMEOUT_S},
                 connections=ACTIVE_CONNECTIONS, idle=idle)
            for idle in IDLE_CONNECTIONS for kind in KINDS]


def waiting(point, wait_s, rate, series, knobs=None, **more):
    """An open-loop case (bench/offered.py): `rate` requests a second, each waiting wait_s."""
    return Case(point, rate * wait_s, series, series.split()[0],
                {"io_delay_ms": wait_s * 1000, **(knobs or {})}, timeout_s=wait_s + 5,
                rate=rate, **more)


# (upstream wait in s, requests offered a second): from 500 to 22,500 in flight, past the
# open-files limit of each process here (20,000), and past what one client can open
# (offered.PER_CLIENT: then several, each from an address of its own)
WAITS = ((1, 500), (10, 500), (20, 500), (45, 500))


def waits(_connections, _placement=None):
    """Requests that wait a long time on a slow upstream (a second; tens of seconds, as a
    long poll does), offered at a fixed rate whether or not the server keeps up: rate x wait
    requests in flight at once, from 500 to 22,500, until each server meets a limit of this
    machine. Open loop (bench/openloop.py)."""
    return [waiting(f"{wait_s} s wait, {rate:,}/s", wait_s, rate, kind)
            for wait_s, rate in WAITS for kind in KINDS]


# A laptop's cap on one process's threads, simulated (limits.ThreadCap): macOS's
# kern.num_taskthreads is of this order. At this wait and rate, 5,000 are in flight.
LAPTOP_THREADS = 4096
LAPTOP_WAIT = (10, 500)


def laptop(_connections, _placement=None):
    """The waits of `waits`, 5,000 in flight, with each server allowed 4,096 threads by the
    OS, as a laptop may allow a process (simulated: limits.ThreadCap)."""
    wait_s, rate = LAPTOP_WAIT
    point = f"{wait_s} s wait, {rate:,}/s, {LAPTOP_THREADS:,} threads a process"
    return [waiting(point, wait_s, rate, kind, thread_cap=LAPTOP_THREADS) for kind in KINDS]


COLLECTOR_WAIT = (20, 500)  # 10,000 in flight: where the event loop's collector paused longest


def collector(_connections, _placement=None):
    """10,000 waiting requests, as in `waits`: the threads, then the event loop with each
    --gc: Python's collector as it is, with what start-up made frozen out of its sight, and
    with higher thresholds."""
    wait_s, rate = COLLECTOR_WAIT
    point = f"{wait_s} s wait, {rate:,}/s"
    return [waiting(point, wait_s, rate, "sync")] + [
        waiting(point, wait_s, rate, f"async --gc {mode}",
                {"gc": mode} if mode != "default" else None) for mode in GC_MODES]


SATURATION_CONNECTIONS = 100  # more than either server's pools: each serves flat out


def capacity(_connections, _placement=None):
    """GET / and POST /items offered open loop from 10% to 110% of the higher server's
    saturation (found first by wrk), the servers interleaved in rounds: each one's latency
    at each rate, its knee, and the highest rate whose p99 stays under --p99-target-ms."""
    return [Case(f"{label_of(method)} c={SATURATION_CONNECTIONS}", SATURATION_CONNECTIONS,
                 kind, kind, method=method, connections=SATURATION_CONNECTIONS)
            for method in ("GET", "POST") for kind in KINDS]


def run_capacity(args, cases, out_dir, run_plan):
    from bench.capacity import measure_capacity  # after --help: it needs .venv
    return measure_capacity(args, cases, out_dir, run_plan)


def shorter_wait(cases):
    """--quick: the same cases with a 2 s wait, 1,000 in flight: a smoke test."""
    return [replace(case, knobs={**case.knobs, "io_delay_ms": 2000}, timeout_s=7,
                    x=case.rate * 2, point="2" + case.point[case.point.index(" s wait"):])
            for case in cases]


def at_points(pick):
    """--quick: the cases at the points pick(the sorted xs) keeps, a smoke test of every
    configuration (fair: the first connection count only, as a thread per connection takes
    tens of seconds to answer 1,500 new connections once on two cores)."""
    def quick(cases):
        kept = pick(sorted({case.x for case in cases}))
        return [case for case in cases if case.x in kept]
    return quick


FIRST, FIRST_TWO = at_points(lambda xs: xs[:1]), at_points(lambda xs: xs[:2])
LAST, BOTH_ENDS = at_points(lambda xs: xs[-1:]), at_points(lambda xs: [xs[0], xs[-1]])
SCENARIOS = {
    # no warm-up beyond the opening, where every connection was answered once: about 150 s
    "fair": Scenario(fair, "connections", quick=FIRST, duration_s=8, warmup_s=0,
                     interleaved=True),
    # in sequence, not interleaved: its baseline serves about 100 req/s, so a slice paused at
    # 1,500 connections would drain for 15 s; and its gap is far wider than the drift
    "article": Scenario(article, "connections", baseline=ARTICLE_SERIES),
    "sweep": Scenario(sweep, "connections", quick=FIRST_TWO, interleaved=True),
    "io-delay": Scenario(io_delay, "upstream delay (ms)", quick=LAST, interleaved=True),
    # --quick: 0 and 2 ms. At 10 ms a hundred threads sharing the GIL answered 44 of 100
    # connections in 2 s and served none in the 1 s window: a failed smoke test
    "cpu": Scenario(cpu, "CPU per view (ms)", quick=FIRST_TWO, interleaved=True),
    "blocking": Scenario(blocking, "upstream delay (ms)", interleaved=True),
    "placement": Scenario(placement, "placement (0 isolated, 1 shared, 2 spread)",
                          interleaved=True),
    # in sequence: thousands of idle clients held per server, not paused with its wrk
    "c10k": Scenario(c10k, "idle connections held open", quick=BOTH_ENDS),
    "waits": Scenario(waits, "requests in flight (offered rate x wait)", quick=FIRST_TWO),
    "laptop": Scenario(laptop, "requests in flight (offered rate x wait)", quick=shorter_wait),
    "collector": Scenario(collector, "requests in flight (offered rate x wait)",
                          quick=shorter_wait),
    "capacity": Scenario(capacity, "offered rate (req/s), or wrk's connections", duration_s=2,
                         repeat=3, runner=run_capacity),
}
