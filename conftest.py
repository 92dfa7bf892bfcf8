"""Fixtures for the tests and the exercise checks: the services' URLs, fresh data, and real
servers on free ports (bench/launch.py). The helpers they call are in tests/support.py."""

import os
import signal

import psutil
import pytest

from scripts.reset_db import reset
from bench.launch import KINDS, Server
from support import released_project, wait_until

# Every process the tests start inherits this mark, whatever session or parent it ends up in.
MARK = "TODO_TESTS_PYTEST_PID"


def pytest_configure(config):
    """SIGTERM ends the run as Ctrl-C does: pytest tears the fixtures down, so no server they
    started (each in a session of its own, which a signal to the group misses) runs on.
    run_tests.sh sends it on Ctrl-C and on a SIGTERM of its own."""
    signal.signal(signal.SIGTERM, interrupt)
    os.environ[MARK] = str(os.getpid())


def interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def started_here():
    """{pid: command line} of the live processes that carry this pytest's mark, itself apart:
    what its tests started, a server's forked children and pool workers included, also once
    their parent is gone and they belong to init."""
    found = {}
    for process in psutil.process_iter(["pid", "cmdline", "status"]):
        try:
            if (process.pid != os.getpid() and process.info["status"] != psutil.STATUS_ZOMBIE
                    and process.environ().get(MARK) == str(os.getpid())):
                found[process.pid] = " ".join(process.info["cmdline"] or [])
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            pass
    return found


@pytest.fixture(scope="module", autouse=True)
def leaves_no_process(request):
    """A module's tests stop every process they start. One left running (a server, a process
    pool's worker, a browser's helper) takes CPU, ports and Postgres connections from the
    tests after it, which then fail by chance, far from the cause: fail here instead, naming
    it, and stop it."""
    before = set(started_here())

    def left_over():
        return {pid: line for pid, line in started_here().items() if pid not in before}

    yield
    wait_until(lambda: not left_over(), 20)  # a browser's helpers take a moment to follow it
    left = left_over()
    for pid in left:
        try:
            psutil.Process(pid).kill()
        except psutil.NoSuchProcess:
            pass
    assert not left, (f"{request.node.nodeid} left processes running (now killed):\n"
                      + "\n".join(f"  {pid}: {line[:200]}" for pid, line in left.items()))


@pytest.fixture(scope="session")
def released(tmp_path_factory):
    """A copy of the project as released, for the tests that read its files (house rules,
    the lesson's excerpts): a participant's exercises, edited or committed, are not in it."""
    return released_project(tmp_path_factory.mktemp("released") / "project")


@pytest.fixture(scope="session")
def urls():
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        pytest.exit(f"{' and '.join(missing)} not set: run the tests with ./run_tests.sh", 2)
    return {"DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}


@pytest.fixture
def fresh_data(urls):
    """schema.sql applied again and the counter gone: 20 rows, counter 0."""
    reset(urls["DATABASE_URL"], urls["REDIS_URL"])


@pytest.fixture
def start_server(urls, tmp_path):
    """start_server(kind, *flags) -> a running servers.Server; all are stopped after the test.
    It raises servers.ServerError, a RuntimeError, with the log's tail if the server fails."""
    started = []

    def start(kind, *flags, service_urls=None, cpus=None, thread_cap=0):
        server = Server(kind, flags, env=service_urls or urls, log_dir=tmp_path, cpus=cpus,
                        thread_cap=thread_cap)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def both_servers(urls, tmp_path_factory):
    """One sync and one async server for a module's read-mostly tests."""
    log_dir = tmp_path_factory.mktemp("logs")
    servers = {}
    try:
        for kind in KINDS:
            servers[kind] = Server(kind, env=urls, log_dir=log_dir).start()
        yield servers
    finally:
        for server in servers.values():
            server.stop()
