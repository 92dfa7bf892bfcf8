"""Real HTTP clients against both servers: an HTTP/1.0 client that asks for keep-alive is told
whether the connection stays open (RFC 9112 section 9.3), and ApacheBench (`ab`, the first
load tool many learners reach for) finishes with every request answered, with -k and without.

Where ab is not installed its tests skip, saying so (./run_tests.sh offers it: Debian's
apache2-utils). Every wait has a deadline: a socket timeout, or ab's subprocess timeout."""

import re
import shutil
import socket
import subprocess

import pytest
import redis
from bench.launch import KINDS
from support import counter_value

from common import COUNTER_KEY

KEEP_ALIVE = b"GET /health HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
PLAIN = b"GET /health HTTP/1.0\r\n\r\n"


@pytest.fixture(params=KINDS)
def server(request, both_servers, fresh_data):
    return both_servers[request.param]


def read_response(conn):
    """One response read by its Content-Length: (status, {lowercased name: value}, body)."""
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = conn.recv(4096)
        assert chunk, f"closed before the end of the headers: {head!r}"
        head += chunk
    head, _, body = head.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip()
               for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers["content-length"]):
        chunk = conn.recv(65536)
        assert chunk, "closed before the end of the body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def test_an_http10_client_that_asks_for_keep_alive_is_told_and_kept(server):
    """Both say "Connection: keep-alive" and answer a second request on the same connection:
    an HTTP/1.0 client not told so reads until the server closes (ab -k waited for the sync
    server's 15 s idle timeout on every request)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        for _ in range(2):
            conn.sendall(KEEP_ALIVE)
            status, headers, _ = read_response(conn)
            assert (status, headers.get("connection", "").lower()) == (200, "keep-alive")


def test_an_http10_client_that_does_not_ask_is_answered_and_closed(server):
    """HTTP/1.0's default: the connection closes after the answer, and nothing says it stays.
    (The sync server says "Connection: close"; aiohttp says nothing, which in HTTP/1.0 means
    the same.)"""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(PLAIN)
        status, headers, _ = read_response(conn)
        assert status == 200
        assert headers.get("connection", "close").lower() == "close"
        assert conn.recv(1) == b""  # closed by the server: a timeout here raises instead


REQUESTS, CONCURRENCY = 2000, 50
# ab compares every body's length with the first one's and counts any other as
# "Failed requests ... (Length: N)". The page's only changing part is the view counter, so
# starting it at 10,000 keeps all 2,000 views at five digits: GET /, the page that waits on
# Postgres and Redis, is driven as is, and a Length failure is a real one. (/health would do
# too, but waits on neither service as the page does.)
COUNTER_START = 10_000


@pytest.mark.skipif(not shutil.which("ab"), reason="no ab (ApacheBench) on PATH: install "
                    "apache2-utils (Debian, Ubuntu) or httpd (Homebrew); ./run_tests.sh "
                    "offers it when run as root")
@pytest.mark.parametrize("keep_alive", [True, False], ids=["ab -k", "ab"])
def test_apachebench_finishes_with_every_request_answered(server, keep_alive, urls):
    """ab -k -n 2000 -c 50 (and without -k: a connection per request) against GET /: every
    request completes, none fails, every view counted once; with -k, every request on a
    kept connection. Counted, not timed: the subprocess timeout is only a deadline."""
    redis.Redis.from_url(urls["REDIS_URL"]).set(COUNTER_KEY, COUNTER_START)
    command = ["ab", *["-k"] * keep_alive, "-n", str(REQUESTS), "-c", str(CONCURRENCY),
               "-s", "30", f"http://127.0.0.1:{server.port}/"]
    try:
        ran = subprocess.run(command, capture_output=True, text=True, timeout=180)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{' '.join(command)} did not finish within 180 s: a client left waiting")
    shown = ran.stdout + ran.stderr

    def count(label):
        found = re.search(rf"^{label}:\s+(\d+)", ran.stdout, re.M)
        return int(found[1]) if found else 0  # ab leaves out some lines when they are 0

    assert ran.returncode == 0, shown
    assert (count("Complete requests"), count("Failed requests"),
            count("Non-2xx responses")) == (REQUESTS, 0, 0), shown
    assert count("Keep-Alive requests") == (REQUESTS if keep_alive else 0), shown
    assert counter_value(urls["REDIS_URL"]) == COUNTER_START + REQUESTS
