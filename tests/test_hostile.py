"""Hostile clients, as raw bytes on a socket: a request whose body length is unclear gets a
400, a body announced too large is refused before it is sent, and neither fills the log;
nor does a client that hangs up mid-request, which is no error of ours.

Each server runs with --access-log, so its log shows every line a request can cause."""

import re
import socket
import struct

import pytest
from bench.launch import KINDS, Server
from support import count_rows, wait_until

JSON_HEADERS = b"Host: x\r\nContent-Type: application/json\r\n"
BODY = b'{"text": "smuggled"}'
UNCLEAR_LENGTHS = {  # RFC 9112 section 6.3: unrecoverable; behind a proxy, request smuggling
    "two different Content-Lengths": b"Content-Length: 20\r\nContent-Length: 3\r\n",
    "a negative Content-Length": b"Content-Length: -5\r\n",
    "a Content-Length that is no number": b"Content-Length: 2O\r\n",
    "Content-Length with Transfer-Encoding": b"Content-Length: 20\r\nTransfer-Encoding: chunked\r\n",
    "the same Content-Length twice": b"Content-Length: 20\r\nContent-Length: 20\r\n",
}
FIFTY_MB = 50 * 1024 * 1024
HALF_A_BODY = b"POST /items HTTP/1.1\r\n" + JSON_HEADERS + b"Content-Length: 40\r\n\r\n" + BODY
HANG_UPS = {  # what a client sends, and how it leaves (hang_up, below)
    "mid-body, closing": (HALF_A_BODY, "close"),
    "mid-body, resetting": (HALF_A_BODY, "reset"),
    "mid-body, stopping to send": (HALF_A_BODY, "stop sending, read the answer, close"),
    "mid-response, resetting": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                "read the answer's first byte, reset"),
}


def exchange(port, data, timeout=10):
    """Send `data` and read until the server closes the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(data)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
        return received


def announce_too_large(port):
    """Headers announcing 50 MB with Expect: 100-continue; the first thing the server says."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(b"POST /items HTTP/1.1\r\n" + JSON_HEADERS
                     + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % FIFTY_MB)
        return conn.recv(65536)  # and hang up, having sent no body


def hang_up(port, data, how):
    """Send `data` and leave, `how` HANG_UPS says: close() sends FIN, reset sends RST,
    stopping to send half-closes the connection (shutdown(SHUT_WR)) and reads on."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=10)
    if "reset" in how:  # SO_LINGER with a zero timeout: close() sends RST, drops what is unsent
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.sendall(data)
    if "stop sending" in how:
        conn.shutdown(socket.SHUT_WR)
    if "read" in how:
        conn.recv(1)
    conn.close()


def hang_ups(server, case, times=5):
    """`times` clients leave as HANG_UPS[case] says; returns once the server has finished
    with each (GET /stats counts a request as served when its handler has returned)."""
    served = server.stats()["served"]
    for _ in range(times):
        hang_up(server.port, *HANG_UPS[case])
    assert wait_until(lambda: server.stats()["served"] >= served + times), "still in service"
    return times


def status_of(reply):
    return int(reply.split(b" ", 2)[1])


@pytest.fixture(scope="module", params=KINDS)
def server(request, urls, tmp_path_factory):
    """One server of each kind for the module, logging every request."""
    started = Server(request.param, ["--access-log"], env=urls,
                     log_dir=tmp_path_factory.mktemp("logs"))
    try:
        yield started.start()
    finally:
        started.stop()


@pytest.mark.parametrize("case", UNCLEAR_LENGTHS)
def test_a_body_of_unclear_length_is_a_400_and_the_connection_closes(server, urls, case):
    rows = count_rows(urls["DATABASE_URL"])
    reply = exchange(server.port, b"POST /items HTTP/1.1\r\n" + JSON_HEADERS
                     + UNCLEAR_LENGTHS[case] + b"\r\n" + BODY)
    if case == "Content-Length with Transfer-Encoding" and server.kind == "sync":
        assert status_of(reply) == 411  # http.server reads no chunked body: it asks for a length
    else:
        assert status_of(reply) == 400, reply
    assert reply.count(b"HTTP/1.") == 1  # one answer, and the connection closed after it
    assert count_rows(urls["DATABASE_URL"]) == rows


def test_an_oversize_body_announced_with_expect_100_is_refused_before_it_is_sent(server):
    first = announce_too_large(server.port)
    assert status_of(first) == 413, f"{server.kind} answered {first[:40]!r}: not 413 first"
    assert b"Connection: close" in first  # so the client hangs up, having sent no body


def test_a_small_body_announced_with_expect_100_is_invited_and_stored(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"POST /items HTTP/1.1\r\n" + JSON_HEADERS
                     + b"Content-Length: %d\r\nExpect: 100-continue\r\n\r\n" % len(BODY))
        assert conn.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        conn.sendall(BODY)
        reply = b""
        while b"smuggled" not in reply and (more := conn.recv(65536)):  # until the body, or
            reply += more  # until the server hangs up; each recv waits at most 10 s
        assert status_of(reply) == 201, reply


def test_malformed_requests_are_logged_one_line_each_never_a_traceback(server):
    earlier = len(server.log())
    for case in UNCLEAR_LENGTHS:
        exchange(server.port, b"POST /items HTTP/1.1\r\n" + JSON_HEADERS
                 + UNCLEAR_LENGTHS[case] + b"\r\n" + BODY)
    announce_too_large(server.port)
    requests = len(UNCLEAR_LENGTHS) + 1
    refused = re.compile(r'"(POST /items|UNKNOWN /) HTTP/1\.[01]" 4\d\d')
    assert wait_until(lambda: len(refused.findall(server.log()[earlier:])) == requests), (
        f"not one access-log line per refused request:\n{server.log()[earlier:]}")
    log = server.log()[earlier:]
    assert "Traceback" not in log and "ERROR" not in log, log
    assert len(log.splitlines()) <= 2 * requests, (
        f"more than one line per request besides the access log's:\n{log}")


@pytest.mark.parametrize("kind", KINDS)
def test_without_access_log_a_malformed_request_leaves_the_log_empty(kind, start_server):
    server = start_server(kind)
    for case in UNCLEAR_LENGTHS:
        exchange(server.port, b"POST /items HTTP/1.1\r\n" + JSON_HEADERS
                 + UNCLEAR_LENGTHS[case] + b"\r\n" + BODY)
    assert server.log().splitlines()[1:] == []


@pytest.mark.parametrize("case", HANG_UPS)
def test_a_client_that_hangs_up_costs_one_line_at_most_never_a_traceback(server, case):
    earlier = len(server.log())
    times = hang_ups(server, case)
    log = server.log()[earlier:]
    assert "Traceback" not in log and "ERROR" not in log, log
    lines = [line for line in log.splitlines() if "/stats" not in line]  # hang_ups() asked
    assert len(lines) <= times, "more than one line per hang-up:\n" + "\n".join(lines)


@pytest.mark.parametrize("kind", KINDS)
def test_without_access_log_a_client_that_hangs_up_leaves_the_log_empty(kind, start_server):
    server = start_server(kind)
    for case in HANG_UPS:
        hang_ups(server, case)
    assert server.log().splitlines()[1:] == []

