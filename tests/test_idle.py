"""Mostly idle connections (bench/idle.py) and slow clients: counted from the OS, not timed."""

import socket

import psutil
import pytest

from bench.idle import Held
from bench.sampling import established
from bench.launch import KINDS


@pytest.mark.parametrize("kind", KINDS)
def test_idle_connections_stay_open_and_cost_threads_only_to_sync(start_server, kind):
    server = start_server(kind, "--idle-timeout-s", "300")
    held = Held(server, 300)
    try:
        process = psutil.Process(server.pid)
        assert established(process, server.port, but=None) == 300
        threads = process.num_threads()
    finally:
        report = held.stop()
    assert (report["opened"], report["failed"], report["closed_by_server"]) == (300, 0, 0)
    assert threads > 300 if kind == "sync" else threads == 1


def still_open(conn):
    """The server has not closed `conn`: nothing to read and no end of stream, seen at once."""
    try:
        return conn.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True


@pytest.mark.parametrize("kind", KINDS)
def test_a_silent_connection_is_closed_after_the_idle_timeout(start_server, kind):
    """A silent connection to a server with the default idle timeout (15 s) stays open while
    a server told --idle-timeout-s 1 closes two silent connections, one after the other. A
    server deaf to the flag would close the first connection before the second of those."""
    patient, brisk = start_server(kind), start_server(kind, "--idle-timeout-s", "1")
    with socket.create_connection(("127.0.0.1", patient.port)) as kept:
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", brisk.port), timeout=30) as silent:
                assert silent.recv(1) == b""  # closed by the server, not by our timeout
        assert still_open(kept)


def slow_client(port):
    """A client that has sent half a request and goes on no further."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    return conn


def answered_within(conn, seconds):
    conn.settimeout(seconds)
    try:
        return conn.recv(12).startswith(b"HTTP/1.1 200")
    except TimeoutError:
        return False


@pytest.mark.parametrize("kind, flags, held_up", [
    ("sync", (), False), ("async", (), False), ("sync", ("--workers", "2"), True)])
def test_two_slow_clients_hold_up_only_a_bounded_pool_of_threads(start_server, kind, flags,
                                                                 held_up):
    """A thread per connection or an event loop serves a third client while two slow ones
    dawdle; two worker threads are both taken by them, until one of them finishes."""
    server = start_server(kind, *flags)
    slow = [slow_client(server.port) for _ in range(2)]
    third = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    third.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    try:
        assert answered_within(third, 3) is not held_up
        slow[0].sendall(b"\r\n")  # one slow request completes: its worker is free again
        assert answered_within(slow[0], 10)
        if held_up:
            assert answered_within(third, 10)
    finally:
        for conn in [*slow, third]:
            conn.close()
