"""What each --scenario runs. A case is one wrk run against one server configuration.

Cases that share a `point` (the x axis: connections, delay, CPU time) are compared with each
other; `series` names the server configuration, the same in the table, the chart and the JSON.
"""

from dataclasses import dataclass, field

ARTICLE_FLAGS = ("--workers", "2", "--connect-per-request")


@dataclass(frozen=True)
class Case:
    point: str  # e.g. "GET / c=500"; cases with the same point are compared
    x: float  # the point's value on the chart's x axis
    series: str  # e.g. "sync", "async --blocking"
    kind: str  # "sync" or "async": which server file
    flags: tuple = ()
    method: str = "GET"
    connections: int = 500
    timeout_s: int = 2
    knobs: dict = field(default_factory=dict, hash=False, compare=False)


def timeout_for(connections):
    """The article's runs: wrk's default 2 s at 500 connections, --timeout 5s at 1500."""
    return 5 if connections >= 1500 else 2


def fair(connections):
    """The article's runs on equal terms: same pools, keep-alive, one process each."""
    cases = []
    for c in connections:
        for kind in ("sync", "async"):
            cases.append(Case(f"GET / c={c}", c, kind, kind, connections=c,
                              timeout_s=timeout_for(c)))
    c = connections[0]
    for kind in ("sync", "async"):
        cases.append(Case(f"POST /items c={c}", c, kind, kind, method="POST", connections=c,
                          timeout_s=timeout_for(c)))
    return cases


def article(connections):
    """The article's set-up: 2 sync workers and a new Postgres connection per request."""
    cases = []
    for c in connections:
        cases.append(Case(f"GET / c={c}", c, "sync --workers 2 --connect-per-request", "sync",
                          ARTICLE_FLAGS, connections=c, timeout_s=timeout_for(c),
                          knobs={"workers": 2, "connect_per_request": True}))
        cases.append(Case(f"GET / c={c}", c, "async", "async", connections=c,
                          timeout_s=timeout_for(c)))
    return cases


def sweep(_connections):
    """GET / from a handful of connections to far more than the pools."""
    return [Case(f"GET / c={c}", c, kind, kind, connections=c, timeout_s=timeout_for(c))
            for c in (10, 50, 100, 500, 1500) for kind in ("sync", "async")]


IO_DELAYS_MS = (0, 10, 50, 200)
BOUNDED_WORKERS = 32


def io_delay(_connections):
    """Each view also waits on a slow upstream: waiting is what an event loop overlaps."""
    cases = []
    for delay in IO_DELAYS_MS:
        flags = ("--io-delay-ms", str(delay))
        point = f"delay {delay} ms"
        cases += [
            Case(point, delay, "sync", "sync", flags, knobs={"io_delay_ms": delay}),
            Case(point, delay, f"sync --workers {BOUNDED_WORKERS}", "sync",
                 flags + ("--workers", str(BOUNDED_WORKERS)),
                 knobs={"io_delay_ms": delay, "workers": BOUNDED_WORKERS}),
            Case(point, delay, "async", "async", flags, knobs={"io_delay_ms": delay}),
        ]
    return cases


CPU_MS = (0, 2, 10)
CPU_CONNECTIONS = 100


def cpu(_connections):
    """Each view also computes: no single-process concurrency model overlaps that."""
    return [Case(f"cpu {ms} ms", ms, kind, kind, ("--cpu-ms", str(ms)),
                 connections=CPU_CONNECTIONS, timeout_s=5, knobs={"cpu_ms": ms})
            for ms in CPU_MS for kind in ("sync", "async")]


BLOCKING_DELAY_MS = 10
BLOCKING_CONNECTIONS = 100


def blocking(_connections):
    """One time.sleep in the event loop: every connection waits behind it."""
    flags = ("--io-delay-ms", str(BLOCKING_DELAY_MS))
    knobs = {"io_delay_ms": BLOCKING_DELAY_MS}
    point = f"delay {BLOCKING_DELAY_MS} ms"
    return [
        Case(point, BLOCKING_DELAY_MS, "async", "async", flags,
             connections=BLOCKING_CONNECTIONS, knobs=knobs),
        Case(point, BLOCKING_DELAY_MS, "async --blocking", "async", flags + ("--blocking",),
             connections=BLOCKING_CONNECTIONS, knobs={**knobs, "blocking": True}),
        Case(point, BLOCKING_DELAY_MS, "sync", "sync", flags,
             connections=BLOCKING_CONNECTIONS, knobs=knobs),
    ]


SCENARIOS = {"fair": fair, "article": article, "sweep": sweep, "io-delay": io_delay,
             "cpu": cpu, "blocking": blocking}
X_AXIS = {"fair": "connections", "article": "connections", "sweep": "connections",
          "io-delay": "upstream delay (ms)", "cpu": "CPU per view (ms)",
          "blocking": "upstream delay (ms)"}
