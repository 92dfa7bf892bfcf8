"""What caps a thread per connection, and a connection per file descriptor, on this machine:
read before a run, so that a summary can say which limit binds first; and what a running
server holds against those limits (its threads, descriptors and memory maps).

read_limits() returns a dict of ints (and one bool), each None where this platform has no
such figure or sets no limit (never a made-up 0):
  nofile_soft, nofile_hard: RLIMIT_NOFILE, a descriptor per connection (per process).
  nproc: RLIMIT_NPROC, threads of all of this user's processes (Linux counts each thread);
    nproc_exempt: True when running as root, whom the kernel does not hold to it.
  max_map_count: memory mappings per process (Linux vm.max_map_count); each thread's stack
    takes two, the stack and its guard page.
  pid_max, threads_max: Linux kernel.pid_max (a thread takes an id, machine-wide) and
    kernel.threads-max (threads on the machine).
  somaxconn: the listen queue's cap (machine.somaxconn, Linux and macOS).
  ephemeral_ports: Linux net.ipv4.ip_local_port_range's size, the connections one client
    address can hold to one server port (wrk's, bench/openloop.py's), whichever server it is.
    Linux's connect() tries the even ports first, and past half of them scans the range for
    each connection: likely why bench/openloop.py stalled for seconds in runs here once about
    14,000 were open (half of 32768-60999), spending twice as much CPU in the kernel as in
    Python, when 13,000 ran smoothly with a third as much in the kernel.
  mem_available_mb: Linux MemAvailable. Not a ceiling by itself: what a thread costs in memory
    depends on how deep its stack grows, so no thread count is derived from it.
Standard library only; on macOS only somaxconn and the rlimits are read.
"""

import os
import resource
from pathlib import Path

from bench.machine import somaxconn

PROC = Path("/proc")


def read_limits():
    """The limits described above, as this process sees them now."""
    nofile_soft, nofile_hard = (finite(n) for n in resource.getrlimit(resource.RLIMIT_NOFILE))
    meminfo = read_int(PROC / "meminfo", field="MemAvailable:")
    return {"nofile_soft": nofile_soft, "nofile_hard": nofile_hard,
            "nproc": finite(resource.getrlimit(resource.RLIMIT_NPROC)[0]),
            "nproc_exempt": os.geteuid() == 0,
            "max_map_count": read_int(PROC / "sys/vm/max_map_count"),
            "pid_max": read_int(PROC / "sys/kernel/pid_max"),
            "threads_max": read_int(PROC / "sys/kernel/threads-max"),
            "somaxconn": somaxconn(), "ephemeral_ports": ephemeral_ports(),
            "mem_available_mb": None if meminfo is None else meminfo // 1024}


def thread_ceiling(limits):
    """(how many connections a thread-per-connection server could hold at most, the name of
    the limit that says so), or (None, None) if no limit is known. Each connection takes a
    thread and a descriptor. Upper bounds: other processes use some of what is machine-wide."""
    ceilings = {"RLIMIT_NOFILE (soft)": limits["nofile_soft"],
                "RLIMIT_NPROC": None if limits["nproc_exempt"] else limits["nproc"],
                "vm.max_map_count / 2": (None if limits["max_map_count"] is None
                                         else limits["max_map_count"] // 2),
                "kernel.pid_max": limits["pid_max"],
                "kernel.threads-max": limits["threads_max"]}
    known = {name: value for name, value in ceilings.items() if value is not None}
    if not known:
        return None, None
    name = min(known, key=known.get)
    return known[name], name


def held_by(pid):
    """{"threads", "fds", "maps"} the process `pid` holds now: Linux reads /proc/PID; elsewhere
    threads and fds come from psutil (from .venv) and maps is None."""
    proc = PROC / str(pid)
    if proc.exists():
        with open(proc / "maps", "rb") as maps:
            return {"threads": len(os.listdir(proc / "task")),
                    "fds": len(os.listdir(proc / "fd")), "maps": sum(1 for _ in maps)}
    import psutil  # macOS has no /proc; psutil asks its kernel instead
    process = psutil.Process(pid)
    return {"threads": process.num_threads(), "fds": process.num_fds(), "maps": None}


def ephemeral_ports():
    """How many local ports Linux gives out to connect() from one address; None elsewhere."""
    try:
        low, high = (int(n) for n in (PROC / "sys/net/ipv4/ip_local_port_range").read_text()
                     .split())
    except (OSError, ValueError):
        return None
    return high - low + 1


def finite(limit):
    """An rlimit, or None for RLIM_INFINITY: no limit."""
    return None if limit == resource.RLIM_INFINITY else limit


def read_int(path, field=None):
    """The int in a /proc file, or on its line that starts with `field`; None if absent."""
    try:
        text = path.read_text()
    except OSError:
        return None
    if field is not None:
        text = next((line[len(field):].split()[0] for line in text.splitlines()
                     if line.startswith(field)), "")
    try:
        return int(text)
    except ValueError:
        return None
