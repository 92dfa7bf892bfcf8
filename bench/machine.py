"""The machine a benchmark ran on, and its limits that can cap a run before a server does."""

import os
import platform
import resource
import subprocess
from importlib import metadata
from pathlib import Path

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
    try:  # macOS and the BSDs
        shown = subprocess.run(["sysctl", "-n", "kern.ipc.somaxconn"], capture_output=True,
                               text=True, timeout=10)
        return int(shown.stdout)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


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
        return (f"open files limited to {target} (hard limit), {connections} connections need "
                f"about {needed}: expect connect errors, as in the article")
    return f"raised the open-files limit from {soft} to {target}"
