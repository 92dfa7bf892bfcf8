"""The machine a run is on (describe_machine, results.json's "machine"), and what caps a thread
per connection, and a connection per file descriptor, on it:
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
  task_threads: macOS's kern.num_taskthreads, the threads one process may run.
  pids_max: the lowest pids.max over this process's cgroup and those above it (Linux: the
    cap systemd's TasksMax sets on a user's slice or a service, or a container's), which
    counts the threads of every process in it.
  mem_available_mb: Linux MemAvailable. Not a ceiling by itself: what a thread costs in memory
    depends on how deep its stack grows, so no thread count is derived from it.
Standard library only; on macOS only somaxconn, the rlimits and kern.num_taskthreads are read.
"""

import os
import platform
import resource
import subprocess
import sys
from importlib import metadata
from pathlib import Path

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
            "task_threads": task_threads(), "pids_max": pids_max(),
            "mem_available_mb": None if meminfo is None else meminfo // 1024}


def task_threads():
    """macOS's cap on one process's threads (sysctl kern.num_taskthreads); None elsewhere."""
    return sysctl_int("kern.num_taskthreads", 5) if sys.platform == "darwin" else None


def sysctl_int(name, timeout_s):
    """`sysctl -n name` as an int (macOS and the BSDs), or None where it cannot be read."""
    try:
        return int(subprocess.run(["sysctl", "-n", name], capture_output=True, text=True,
                                  timeout=timeout_s).stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


def pids_max():
    """The lowest pids.max that holds this process: its cgroup's or one above it (cgroup v2,
    or v1's pids hierarchy); None where none is set or cgroups cannot be read."""
    try:
        lines = (PROC / "self/cgroup").read_text().splitlines()
    except OSError:
        return None
    caps = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        base = {"": Path("/sys/fs/cgroup"), "pids": Path("/sys/fs/cgroup/pids")}.get(controllers)
        if base is None:
            continue
        group = base / path.lstrip("/")
        for folder in (group, *group.parents):
            caps.append(read_int(folder / "pids.max"))
            if folder == base:
                break
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
    text = read_text(path)
    if field is not None:
        text = next((line[len(field):].split()[0] for line in text.splitlines()
                     if line.startswith(field)), "")
    try:
        return int(text)
    except ValueError:
        return None


PIDS_CGROUPS = (Path("/sys/fs/cgroup/pids"), Path("/sys/fs/cgroup"))  # cgroup v1, then v2


class ThreadCap:
    """An OS cap on the threads of one server, as a laptop may have one: macOS caps each
    process (sysctl kern.num_taskthreads), systemd each service or user slice (TasksMax).
    Never a cap in our code: the server learns of it as a refused thread.

    As root on Linux, a pids cgroup of the server's own (what TasksMax sets): pids.max counts
    the threads of this process alone, and pids.events counts each one refused. Otherwise
    RLIMIT_NPROC, which Linux counts over every thread of the user's processes, the server's
    and the user's others alike: a stand-in, and `how` says so. macOS counts processes
    there, not threads: on a Mac the cap a run meets is the Mac's own (kern.num_taskthreads)."""

    def __init__(self, threads):
        self.threads, self.group = threads, None
        base = next((path for path in PIDS_CGROUPS if (path / "cgroup.procs").exists()
                     and ("pids" in read_text(path / "cgroup.controllers") or
                          path.name == "pids")), None)
        if os.geteuid() == 0 and base and os.access(base, os.W_OK):
            self.group = base / f"todo-bench-{os.getpid()}-{threads}"
            self.how = f"a pids cgroup of its own (pids.max = {threads:,})"
        elif os.geteuid() != 0 and sys.platform == "darwin":
            self.how = (f"RLIMIT_NPROC = {threads:,}, which macOS counts in processes: the "
                        "threads meet kern.num_taskthreads instead")
        elif os.geteuid() != 0:
            self.how = (f"RLIMIT_NPROC = {threads:,}, counting every thread of this user's "
                        "processes, not the server's alone")
        else:
            raise OSError("no writable pids cgroup: as root, RLIMIT_NPROC would not hold")

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
            try:
                self.group.rmdir()
            except OSError:
                pass  # a process still in it: the kernel keeps it until that one exits


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
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


def somaxconn():
    """The kernel's cap on a listening socket's queue of connections not yet accepted: the
    servers ask for 1024, and get at most this. None where neither Linux nor macOS tells."""
    linux = Path("/proc/sys/net/core/somaxconn")
    if linux.exists():
        return int(linux.read_text())
    return sysctl_int("kern.ipc.somaxconn", 10)  # macOS and the BSDs



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
