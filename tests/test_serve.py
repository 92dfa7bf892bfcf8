"""./run_bench.sh --serve: the exercises' hands-on set-up. Its pages answer, its data is fresh,
and Ctrl-C or SIGTERM leaves none of the processes it started behind, quietly."""

import os
import re
import signal
import socket
import subprocess

import psutil
import pytest
from scripts.databases import free_port

from bench.placement import listeners
from support import ROOT, call, count_rows

pytestmark = pytest.mark.slow  # ./run_bench.sh --serve, with services of its own

READY = "Press Ctrl-C here"


def listening_pids(port):
    return set(listeners(port))


def gone(pid):
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def run_serve(ports):
    """run_bench.sh --serve on `ports`, with services of its own (no URLs given)."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "REDIS_URL")}
    return subprocess.Popen([str(ROOT / "run_bench.sh"), "--serve", "--serve-ports",
                             ",".join(map(str, ports))], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # a process group, as at a terminal


def start_serving():
    """run_bench.sh --serve on two free ports, read up to its prompt."""
    script = run_serve([free_port(), free_port()])
    shown = []
    for line in script.stdout:
        shown.append(line)
        if READY in line:
            return script, "".join(shown)
    script.wait()
    pytest.fail("run_bench.sh --serve stopped before serving:\n" + "".join(shown))


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm", "ctrl-c-and-sigterm"])
def test_serve_answers_then_stops_everything_it_started(how):
    script, shown = start_serving()
    try:
        pages = [int(port) for port in re.findall(r"http://127\.0\.0\.1:(\d+)/ ", shown)]
        urls = dict(re.findall(r"(DATABASE_URL|REDIS_URL)=(\S+)", shown.split("export ")[-1]))
        assert len(pages) == 2 and set(urls) == {"DATABASE_URL", "REDIS_URL"}, shown
        assert [call(port, "GET", "/").status for port in pages] == [200, 200]
        assert count_rows(urls["DATABASE_URL"]) == 20  # schema.sql, freshly applied
        service_ports = [int(re.search(r":(\d+)/", url).group(1)) for url in urls.values()]
        started = set().union(*(listening_pids(port) for port in pages + service_ports))
        assert len(started) >= 4, f"servers, Postgres and Redis: {started}"
    finally:
        if how == "sigterm":
            script.terminate()  # kill PID: the script alone
        else:
            os.killpg(script.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        if how == "ctrl-c-and-sigterm":  # a second signal arrives while the first is handled
            os.killpg(script.pid, signal.SIGTERM)
        rest = script.communicate(timeout=120)[0]
    # the code a shell reports for the signal that ended it: SIGINT 130, SIGTERM 143 (with
    # both, whichever the shell handled first)
    assert script.returncode in {"ctrl-c": {130}, "sigterm": {143},
                                 "ctrl-c-and-sigterm": {130, 143}}[how], rest
    assert "stopping the servers" in rest, rest
    assert "Traceback" not in rest and "Error" not in rest, rest  # a stop is not a failure
    assert [pid for pid in started if not gone(pid)] == [], rest


def test_a_taken_port_is_an_error_that_names_its_holder():
    """The exercises' commands name --serve's ports: serving elsewhere would send them to
    somebody else's server."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port, free = taken.getsockname()[1], free_port()
        script = run_serve([port, free])
        shown = script.communicate(timeout=120)[0]
    assert script.returncode == 1, shown
    assert f"port {port}, for sync_server.py, is taken by process {os.getpid()}" in shown
    assert "--serve-ports" in shown and "Traceback" not in shown
    assert listening_pids(free) == set()  # nothing started on the other port either
