"""Which CPUs the server under test may run on, and which the load (wrk, Postgres, Redis) may.
On a small machine the scheduler decides as much as the servers (a threaded server pays CPU
per request for each hand-off of the GIL between cores; an event loop runs on one core
anyway): a placement makes that a setting of the run, not an accident of it (cpus_for).
Every placement is set explicitly, shared included: a child inherits its parent's affinity,
so a server given none would run where the benchmark pinned itself. A server's children (a
pool's workers, --processes' copies) go where it was placed, and count as the server
(bench/sampling.py). Linux only (os.sched_setaffinity); elsewhere every placement is shared.
"""

import functools
import os
from contextlib import suppress
from urllib.parse import urlsplit

PLACEMENTS = ("isolated", "shared", "spread")
DEFAULT = "shared"  # what a learner's machine does; isolated is the control (LESSON.md step 4)


def supported():
    return hasattr(os, "sched_setaffinity")


@functools.lru_cache(maxsize=None)
def machine_cpus():
    """The CPUs the benchmark may use, as found on first asking, before it moved itself
    (bench/run.py asks first thing)."""
    return sorted(os.sched_getaffinity(0)) if supported() else []


def cpus_for(placement, cores=None):
    """{"server": [...], "load": [...]} for a placement on this machine; None where the OS has
    no affinity. shared: every CPU for both (what a laptop does); isolated: the server alone
    on the last core; spread: the server on the upper half (at least two), the load on the
    lower (on two cores, the server both and the load core 0). With one core, all are shared."""
    cores = machine_cpus() if cores is None else cores
    if not supported() or not cores:
        return None
    if placement == "shared" or len(cores) < 2:
        return {"server": cores, "load": cores}
    if placement == "isolated":
        return {"server": cores[-1:], "load": cores[:-1]}
    half = len(cores) // 2
    server = cores[half:] if len(cores) - half >= 2 else cores
    load = cores[:half] if server is not cores else cores[:1]
    return {"server": server, "load": load}


def pinned_to(cpus):
    """A preexec_fn for subprocess.Popen: the child, and all it starts, runs on `cpus`."""
    if not cpus:
        return None
    return lambda: os.sched_setaffinity(0, cpus)


def affinity_of(pid):
    """The CPUs a process's main thread may run on now, or None where it cannot be read."""
    try:
        return sorted(os.sched_getaffinity(pid))
    except (AttributeError, OSError):
        return None


def service_processes():
    """{"Postgres": [process, ...], "Redis": [...]}: every process of the services that
    DATABASE_URL and REDIS_URL point at, found by the port each listens on; a service with
    no process of ours there (another user's, another machine's) has an empty list."""
    import psutil  # .venv only: run.py imports this module before .venv may exist
    found = {}
    for name, variable in (("Postgres", "DATABASE_URL"), ("Redis", "REDIS_URL")):
        found[name] = []
        for pid in listening_on(urlsplit(os.environ.get(variable, "")).port):
            with suppress(psutil.Error):
                root = psutil.Process(pid)
                found[name] += [root, *root.children(recursive=True)]
    return found


def listeners(port):
    """The pids that listen on `port`, as far as this user may see (none it may not)."""
    import psutil
    try:
        return tuple(sorted({c.pid for c in psutil.net_connections(kind="tcp")
                             if c.status == psutil.CONN_LISTEN and c.laddr.port == port
                             and c.pid}))
    except psutil.Error:
        return ()


# found once: a scan of every TCP socket is slow while a run holds thousands, and the
# services do not move
listening_on = functools.lru_cache(maxsize=None)(listeners)


def pin_services(cpus):
    """Move every process and thread of Postgres and Redis onto `cpus` (None: every CPU).
    Returns a sentence on what could not be moved, or None. A new Postgres backend inherits
    the affinity of the postmaster that forks it."""
    import psutil
    everywhere = cpus or machine_cpus()
    missed = []
    for name, processes in service_processes().items():
        if not processes:
            missed.append(f"{name} (not a process of ours)")
        for process in processes:
            try:
                threads = [thread.id for thread in process.threads()]
            except psutil.Error:
                continue  # a backend that has just exited
            for thread in threads:
                with suppress(ProcessLookupError):  # a thread that has just ended
                    os.sched_setaffinity(thread, everywhere)
    return f"not pinned: {', '.join(missed)}" if missed else None
