"""The machine a run is on (describe_machine), what caps a thread per connection and a
connection per descriptor on it (read_limits: the summary says which binds first), and what a
running server holds against them (held_by). None where this platform has no such figure or
sets no limit, never a made-up 0. Standard library only; macOS, without /proc, reads only
somaxconn, the rlimits and kern.num_taskthreads.
"""

import os
import platform
import resource
import subprocess
import sys
from contextlib import suppress
from importlib import metadata
from pathlib import Path

PROC = Path("/proc")
# where pids cgroups are, by /proc/PID/cgroup's controllers: cgroup v1, then v2
PIDS_CGROUPS = {"pids": Path("/sys/fs/cgroup/pids"), "": Path("/sys/fs/cgroup")}


def read_limits():
    """The limits as this process sees them now: a dict of ints, and one bool."""
    nofile_soft, nofile_hard = (finite(n) for n in resource.getrlimit(resource.RLIMIT_NOFILE))
    meminfo = read_int(PROC / "meminfo", field="MemAvailable:")
    return {"nofile_soft": nofile_soft, "nofile_hard": nofile_hard,
            "nproc": finite(resource.getrlimit(resource.RLIMIT_NPROC)[0]),  # Linux: threads
            "nproc_exempt": os.geteuid() == 0,
            "max_map_count": read_int(PROC / "sys/vm/max_map_count"),  # two a thread's stack
            "pid_max": read_int(PROC / "sys/kernel/pid_max"),
            "threads_max": read_int(PROC / "sys/kernel/threads-max"),
            "somaxconn": somaxconn(), "ephemeral_ports": ephemeral_ports(),
            "task_threads": sysctl_int("kern.num_taskthreads") if sys.platform == "darwin"
            else None,
            "pids_max": pids_max(),
            # not a ceiling: what a thread costs depends on how deep its stack grows
            "mem_available_mb": None if meminfo is None else meminfo // 1024}


def sysctl_int(name):
    """`sysctl -n name` as an int (macOS and the BSDs), or None where it cannot be read."""
    try:
        return int(subprocess.run(["sysctl", "-n", name], capture_output=True, text=True,
                                  timeout=10).stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def pids_max():
    """The lowest pids.max over this process's cgroup and those above it (cgroup v2, or v1's
    pids hierarchy): the cap systemd's TasksMax sets on a user's slice or a service, or a
    container's, counting the threads of every process in it. None: none set, or unreadable."""
    caps = []
    for line in read_text(PROC / "self/cgroup").splitlines():
        _, controllers, path = line.split(":", 2)
        base = PIDS_CGROUPS.get(controllers)
        if base is not None:  # its group, and each above it up to the hierarchy's root
            group = base / path.lstrip("/")
            caps += [read_int(folder / "pids.max") for folder in (group, *group.parents)
                     if folder.is_relative_to(base)]
    caps = [cap for cap in caps if cap is not None]  # "max" reads as None: no cap
    return min(caps) if caps else None


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
    """How many local ports Linux gives out to connect() from one address to one server port;
    None elsewhere. connect() tries the even ports first, and past half of them scans the
    range for each connection: likely why bench/openloop.py stalled for seconds here once about
    14,000 were open (half of 32768-60999), with twice as much CPU in the kernel as in Python,
    when 13,000 ran smoothly with a third as much in the kernel."""
    span = [int(n) for n in read_text(PROC / "sys/net/ipv4/ip_local_port_range").split()]
    return span[1] - span[0] + 1 if span else None


def finite(limit):
    """An rlimit, or None for RLIM_INFINITY: no limit."""
    return None if limit == resource.RLIM_INFINITY else limit


def read_int(path, field=None):
    """The int in a /proc file, or on its line that starts with `field`; None if absent."""
    text = read_text(path)
    if field is not None:
        text = next((line[len(field):].split()[0] for line in text.splitlines()
                     if line.startswith(field)), "")
    try:
        return int(text)
    except ValueError:
        return None


class ThreadCap:
    """An OS cap on one server's threads, as a laptop may have one (macOS's per process,
    systemd's TasksMax per service or slice): the server learns of it as a refused thread.
    As root on Linux, a pids cgroup of the server's own, whose pids.events counts each refusal;
    otherwise RLIMIT_NPROC, a stand-in that Linux counts over every thread of the user's
    processes (`how` says so), and macOS in processes, not threads."""

    def __init__(self, threads):
        self.threads, self.group = threads, None
        base = next((path for path in PIDS_CGROUPS.values() if (path / "cgroup.procs").exists()
                     and ("pids" in read_text(path / "cgroup.controllers") or
                          path.name == "pids")), None)
        if os.geteuid() == 0 and base and os.access(base, os.W_OK):
            self.group = base / f"todo-bench-{os.getpid()}-{threads}"
            self.how = f"a pids cgroup of its own (pids.max = {threads:,})"
        elif os.geteuid() == 0:
            raise OSError("no writable pids cgroup: as root, RLIMIT_NPROC would not hold")
        else:
            self.how = f"RLIMIT_NPROC = {threads:,}, " + (
                "which macOS counts in processes: the threads meet kern.num_taskthreads instead"
                if sys.platform == "darwin" else
                "counting every thread of this user's processes, not the server's alone")

    def preexec(self):
        """In the child, before it runs the server: the rlimit, where no cgroup is used."""
        if self.group is None:
            resource.setrlimit(resource.RLIMIT_NPROC, (self.threads, self.threads))

    def hold(self, pid):
        """Put the started server (every thread it has and will have) under the cap."""
        if self.group is not None:
            control = self.group.parent / "cgroup.subtree_control"
            if control.exists():  # cgroup v2: let the groups below count their threads
                control.write_text("+pids")
            self.group.mkdir(exist_ok=True)
            (self.group / "pids.max").write_text(str(self.threads))
            (self.group / "cgroup.procs").write_text(str(pid))

    def refused(self):
        """How many threads the OS refused so far (pids.events), None where it cannot say."""
        if self.group is None:
            return None
        events = read_text(self.group / "pids.events").split()
        return int(events[events.index("max") + 1]) if "max" in events else None

    def release(self):
        """Remove the cgroup once the server has exited (an empty cgroup only)."""
        if self.group is not None and self.group.exists():
            with suppress(OSError):  # a process still in it: kept until that one exits
                self.group.rmdir()


def read_text(path):
    try:
        return path.read_text()
    except OSError:
        return ""


PACKAGES = ("aiohttp", "asyncpg", "redis", "psycopg2-binary", "jinja2", "psutil")


def describe_machine():
    """cores, cpu, os, python, packages, wrk and somaxconn, as results.json records them."""
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    return {"cores": os.cpu_count(), "cpu": cpu_model(), "os": platform.platform(),
            "python": platform.python_version(),
            "packages": {name: metadata.version(name) for name in PACKAGES},
            "wrk": (wrk.stdout or wrk.stderr).split("Copyright")[0].strip(),
            "somaxconn": somaxconn()}


def cpu_model():
    for line in read_text(PROC / "cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def somaxconn():
    """The kernel's cap on a listening socket's queue of connections not yet accepted: the
    servers ask for 1024, and get at most this. None where neither Linux nor macOS tells."""
    linux = read_int(PROC / "sys/net/core/somaxconn")
    return sysctl_int("kern.ipc.somaxconn") if linux is None else linux  # macOS and the BSDs


def somaxconn_note(connections, cap):
    """A note when more connections arrive at once than the listen queue holds."""
    if cap is None or connections <= cap:
        return None
    return (f"{connections} connections exceed the listen queue's cap (somaxconn {cap}): "
            "connect errors could be the OS's limit, not the server's")


def raise_fd_limit(connections):
    """wrk and a thread-per-connection server each need a descriptor per connection.
    Returns a note saying what was done, or None if the limit was already enough."""
    needed = connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        return None
    target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if target < needed:
        return (f"open files: at most {target:,} a process (the hard limit), fewer than the "
                f"{needed:,} that {connections:,} connections need: a run past that meets the "
                "limit (wrk's connect errors, as in the article; an open-loop run's own limit)")
    return f"raised the open-files limit from {soft} to {target}"
