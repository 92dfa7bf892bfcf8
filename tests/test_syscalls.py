"""bench/syscalls.py: perf's interval counts read as calls per request."""

import os
import subprocess
import sys

import psutil
import pytest

from bench.syscalls import per_request
from support import ROOT

PERF_CSV = """\
# started on Fri Dec  4 06:40:00 2026

     0.100,900,,raw_syscalls:sys_enter,100,100.00,,
     0.100,300,,syscalls:sys_enter_epoll_wait,100,100.00,,
     0.200,1000,,raw_syscalls:sys_enter,100,100.00,,
     0.200,400,,syscalls:sys_enter_epoll_wait,100,100.00,,
     0.300,2000,,raw_syscalls:sys_enter,100,100.00,,
     0.300,<not counted>,,syscalls:sys_enter_epoll_wait,0,100.00,,
"""


def test_the_intervals_inside_the_window_count_per_request():
    # only the interval that ended at 0.2 s falls in (0.1, 0.25]
    assert per_request(PERF_CSV, 0.1, 0.25, 100) == {"all": 10.0, "epoll_wait": 4.0}


def test_help_says_what_it_counts():
    shown = subprocess.run([sys.executable, "-m", "bench.syscalls", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    assert "system calls each server makes per request" in shown


def can_count():
    try:
        return subprocess.run(["perf", "stat", "-e", "raw_syscalls:sys_enter", "true"],
                              capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def servers_running_with(flag):
    return [process.pid for process in psutil.process_iter(["cmdline"])
            if process.info["cmdline"] and flag in " ".join(process.info["cmdline"])
            and "_server.py" in " ".join(process.info["cmdline"])]


@pytest.mark.slow  # perf, and both servers under load
@pytest.mark.skipif(not can_count(), reason="needs perf and its syscall tracepoints")
def test_a_count_prints_both_servers_and_leaves_neither_running(urls):
    shown = subprocess.run(
        [sys.executable, "-m", "bench.syscalls", "--rate", "50", "--wait-ms", "217",
         "--seconds", "1"], cwd=ROOT, env={**os.environ, **urls}, capture_output=True,
        text=True, timeout=180)
    assert shown.returncode == 0, shown.stderr
    assert "| all |" in shown.stdout and "requests served: sync" in " ".join(shown.stdout.split())
    assert servers_running_with("--io-delay-ms 217") == []  # perf's servers stopped with it
