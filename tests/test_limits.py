"""Each server at a limit of the OS: out of open files, and under a cap on its threads as a
laptop has one. What the clients get is counted; the server says so in one line, not a
traceback; and it serves new connections again once the load has gone."""

import contextlib
import os
import resource
import selectors
import socket
import time

import pytest

from bench.launch import KINDS
from bench.limits import ThreadCap
from bench.offered import recovery

FD_LIMIT = 64  # the server's own: its pools, listening socket and log take about 30
CONNECTIONS = 80  # more than either limit below lets in
THREAD_CAP = 30


@contextlib.contextmanager
def soft_fd_limit(limit):
    """Lower this process's soft open-files limit while a server starts: it inherits it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def held_requests(port, count):
    """`count` connections, each with a GET /health sent and kept open after its answer."""
    held = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\n\r\n")
        held.append(sock)
    return held


def answered(held, seconds=3.0):
    """How many of the held connections got a status line back within `seconds` in all."""
    with selectors.DefaultSelector() as selector:
        for sock in held:
            selector.register(sock, selectors.EVENT_READ)
        got, deadline = 0, time.monotonic() + seconds
        while selector.get_map() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=max(0.0, deadline - time.monotonic())):
                selector.unregister(key.fileobj)
                try:
                    got += key.fileobj.recv(64).startswith(b"HTTP/1.1 ")
                except OSError:
                    pass  # reset: refused, not answered
        return got


@pytest.mark.parametrize("kind", KINDS)
def test_out_of_open_files_the_server_says_so_in_one_line_and_recovers(kind, start_server):
    with soft_fd_limit(FD_LIMIT):
        server = start_server(kind)
    held = held_requests(server.port, CONNECTIONS)
    try:
        got = answered(held)
        assert 0 < got < CONNECTIONS  # the first ones served, the rest never accepted
        time.sleep(1.5)  # a second retry of accept(), still out of descriptors
    finally:
        for sock in held:
            sock.close()
    assert recovery(server, 15) is not None  # a new connection gets a 200 from /health
    log = server.log()
    lines = [line for line in log.splitlines() if "cannot accept connections" in line]
    assert lines and "Too many open files" in lines[0]
    assert "Traceback" not in log and " ERROR " not in log


def pids_cgroup():
    try:
        return os.geteuid() == 0 and ThreadCap(THREAD_CAP).group is not None
    except OSError:
        return False


@pytest.mark.skipif(not pids_cgroup(), reason="needs root and a pids cgroup (Linux)")
@pytest.mark.parametrize("kind", KINDS)
def test_under_a_thread_cap_only_the_thread_per_connection_server_runs_out(kind,
                                                                           start_server):
    server = start_server(kind, thread_cap=THREAD_CAP)
    held = held_requests(server.port, CONNECTIONS)
    try:
        got = answered(held)
        refused = server.thread_cap.refused()
    finally:
        for sock in held:
            sock.close()
    if kind == "async":  # one thread, whatever the connections
        assert got == CONNECTIONS and refused == 0
        return
    assert got < THREAD_CAP and refused > 0  # counted by the kernel, not by our code
    assert recovery(server, 15) is not None  # a new connection gets a 200 from /health
    log = server.log()
    assert "cannot start a thread for a connection: can't start new thread" in log
    assert "Traceback" not in log and " ERROR " not in log
