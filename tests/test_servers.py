"""What a user of either server sees: the page, the insert, keep-alive, many at once."""

import http.client
import signal
import socket
import subprocess
import sys

import pytest
from bench.launch import KINDS, ServerError
from support import (ROOT, at_once, call, count_rows, counter_on, counter_value, item_ids_on,
                     post_item, reset_peaks, stored_text, wait_until)


@pytest.fixture(params=KINDS)
def server(request, both_servers, fresh_data):
    return both_servers[request.param]


def test_page_lists_every_row_in_order(server):
    page = call(server.port, "GET", "/")
    assert page.status == 200
    assert item_ids_on(page.text) == list(range(1, 21))
    assert "Todo item number 20" in page.text


def test_counter_rises_by_one_per_view(server, urls):
    counters = [counter_on(call(server.port, "GET", "/").text) for _ in range(3)]
    assert counters == [1, 2, 3]
    assert counter_value(urls["REDIS_URL"]) == 3


def test_created_item_is_stored_and_shown(server, urls):
    reply = post_item(server.port, {"text": "  Water the plants\n"})
    assert reply.status == 201
    created = reply.json()
    assert created == {"id": created["id"], "text": "Water the plants"}
    assert stored_text(urls["DATABASE_URL"], created["id"]) == "Water the plants"
    assert created["id"] in item_ids_on(call(server.port, "GET", "/").text)


def test_script_text_is_escaped(server):
    post_item(server.port, {"text": "<script>alert('x')</script>"})
    page = call(server.port, "GET", "/").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in page


def test_japanese_round_trips(server, urls):
    created = post_item(server.port, {"text": "牛乳を買う 🥛"}).json()
    assert created["text"] == "牛乳を買う 🥛"
    assert stored_text(urls["DATABASE_URL"], created["id"]) == "牛乳を買う 🥛"
    assert "牛乳を買う 🥛" in call(server.port, "GET", "/").text


def test_keep_alive_serves_two_requests_on_one_connection(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/")
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    conn.request("GET", "/health")
    second = conn.getresponse()
    second.read()
    assert (first.status, second.status) == (200, 200)
    assert conn.sock is sock and sock is not None  # not reconnected in between
    conn.close()


def test_health_reports_both_services(server):
    reply = call(server.port, "GET", "/health")
    assert (reply.status, reply.json()) == (200, {"postgres": "ok", "redis": "ok"})


def test_300_concurrent_requests_are_all_answered(server, urls):
    """Counted, not timed: every request answered, every view counted, every insert stored."""
    gets, posts = 200, 100
    rows_before = count_rows(urls["DATABASE_URL"])
    reset_peaks(server)
    views = [lambda: call(server.port, "GET", "/", timeout=60).status] * gets
    inserts = [lambda n=n: post_item(server.port, {"text": f"concurrent {n}"}).status
               for n in range(posts)]
    statuses = at_once(views + inserts)
    assert sorted(statuses) == [200] * gets + [201] * posts
    assert counter_value(urls["REDIS_URL"]) == gets
    assert count_rows(urls["DATABASE_URL"]) - rows_before == posts
    assert server.stats()["peak_in_service"] > 1  # they really overlapped


def test_silent_half_request_does_not_block_others(server):
    with socket.create_connection(("127.0.0.1", server.port)) as silent:
        silent.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never finishes
        assert [call(server.port, "GET", "/", timeout=10).status for _ in range(3)] == [200] * 3


def test_stats_count_requests_and_connections(server):
    before = server.stats()
    call(server.port, "GET", "/")
    after = server.stats()
    assert after["served"] == before["served"] + 1
    assert after["in_service"] == 0
    assert after["pg_connections_opened"] == 10  # the pool's size, opened once


def test_chunked_body_is_refused_by_sync_and_read_by_async(both_servers, fresh_data):
    """The one request both cannot answer alike: http.server does not read chunked bodies."""
    # sent whole, in one write: the sync server answers and closes without reading the body,
    # and a client still sending its chunks one by one would meet a closed socket
    request = (b"POST /items HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n9\r\n{\"text\": \r\nA\r\n\"chunked\"}\r\n"
               b"0\r\n\r\n")
    replies = {}
    for kind, server in both_servers.items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(request)
            response = http.client.HTTPResponse(sock)
            response.begin()
            replies[kind] = (response.status, response.getheader("Connection"), response.read())
    assert replies["sync"][:2] == (411, "close")
    assert b"Content-Length" in replies["sync"][2]
    assert replies["async"][0] == 201


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_sigterm_and_ctrl_c_stop_cleanly(kind, stop_signal, start_server):
    server = start_server(kind)
    assert call(server.port, "GET", "/health").status == 200
    assert server.stop(stop_signal) == 0
    assert "Traceback" not in server.log()
    assert f"{kind}_server: stopped" in server.log()


def test_a_server_that_exits_at_start_is_a_clear_error(start_server):
    with pytest.raises(ServerError) as error:
        start_server("sync", "--workers", "-1")
    assert "exited with status 2" in str(error.value)
    assert "must not be negative" in str(error.value)  # the tail of its log


@pytest.mark.parametrize("kind", KINDS)
def test_help_shows_every_flag_with_its_default(kind):
    shown = subprocess.run([sys.executable, f"{kind}_server.py", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    for flag in ("--host", "--port", "--db-pool-size", "--access-log", "--io-delay-ms",
                 "--cpu-ms", "DATABASE_URL", "REDIS_URL"):
        assert flag in shown
    assert "(default: 10)" in shown


@pytest.mark.parametrize("kind", KINDS)
def test_unreachable_postgres_is_a_clear_error(kind, urls):
    env = {"DATABASE_URL": "postgresql://todo@127.0.0.1:1/todo", "REDIS_URL": urls["REDIS_URL"],
           "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, f"{kind}_server.py", "--port", "0"], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{kind}_server: cannot start:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_a_stop_lets_the_requests_in_flight_finish(kind, start_server, fresh_data):
    """SIGTERM while 20 page views wait upstream: each one is answered, none fails."""
    server = start_server(kind, "--io-delay-ms", "500")
    views = [lambda: call(server.port, "GET", "/", timeout=30).status] * 20

    def stop_when_all_wait():
        waiting = wait_until(lambda: server.stats()["waiting_upstream"] >= 20, 60)
        return server.stop() if waiting else "the 20 views never all waited upstream"

    *statuses, exit_status = at_once(views + [stop_when_all_wait])
    assert sorted(statuses) == [200] * 20 and exit_status == 0
    assert "Traceback" not in server.log()
