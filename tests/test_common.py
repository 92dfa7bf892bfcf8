"""What both servers share, tested in-process: no Postgres, no Redis, no sockets.

    .venv/bin/python -m pytest tests/test_common.py     # about a second
"""

import gc
import json
import logging
import os
import re
import resource
import subprocess
import sys
import threading
from http import HTTPStatus

import pytest
import redis

from common import (INTERNAL_ERROR, JSON, MAX_TEXT_CHARS, POOL_BUSY, POSTGRES_DOWN, REDIS_DOWN,
                    REDIS_ERRORS, BadRequest, PoolBusy, PostgresDown, burn_cpu, health_report,
                    load_page_template, parse_new_item, render_page)
from common import refusal as refusal_of
from config import make_parser, settings_from
from stats import Outages, Stats
from support import ROOT
from sync_http import Application, Request


def refusal(body):
    with pytest.raises(BadRequest) as raised:
        parse_new_item(body)
    return raised.value.status, str(raised.value)


def test_a_new_item_is_its_text_stripped():
    assert parse_new_item(b'{"text": "  Buy milk \\n"}') == "Buy milk"
    assert parse_new_item('{"text": "牛乳"}'.encode()) == "牛乳"
    assert parse_new_item(json.dumps({"text": "x" * MAX_TEXT_CHARS}).encode()) == "x" * 500


@pytest.mark.parametrize("body, says", [
    (b"", "empty"),
    (b'{"text": ', "not valid JSON"),
    (b'{"text": "\xff"}', "not valid UTF-8"),
    (b"[" * 50_000, "nests too deeply"),
    (b'["text"]', "must be a JSON object"),
    (b"{}", '"text" is required'),
    (b'{"text": 42}', "must be a string"),
    (b'{"text": "  "}', "must not be blank"),
    (b'{"text": "' + b"y" * 501 + b'"}', "at most 500 characters (it has 501)"),
    (b'{"text": "a", "id": 1}', 'Unknown field(s): "id"'),
    (b'{"text": "a\\u0000b"}', "NUL"),
    (b'{"text": "\\ud800"}', "valid Unicode"),
])
def test_bad_bodies_are_refused_with_a_sentence_that_says_why(body, says):
    status, message = refusal(body)
    assert status == HTTPStatus.BAD_REQUEST
    assert says in message and message.endswith(".")


def test_no_key_but_text_can_reach_sql():
    _, message = refusal(b'{"text": "a", "text) VALUES (1); --": 1}')
    assert message.startswith("Unknown field(s)")


def test_health_is_503_unless_both_services_answer():
    assert health_report(True, True) == (HTTPStatus.OK, b'{"postgres": "ok", "redis": "ok"}')
    status, body = health_report(True, False)
    assert (status, json.loads(body)) == (HTTPStatus.SERVICE_UNAVAILABLE,
                                          {"postgres": "ok", "redis": "down"})


def test_what_went_wrong_becomes_a_status_and_a_sentence(caplog):
    """dispatch() answers a handler's exception with refusal(): the client's mistake in its
    own words, an outage or a full pool a 503 that names it, anything else a logged 500."""
    request, log = Request(None, "GET", "/x", None), logging.getLogger("refusal-under-test")
    too_large = BadRequest("big", HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"Connection": "close"})
    expected = [(too_large, 413, {"error": "big"}, {"Connection": "close"}),
                (PoolBusy(), 503, {"error": POOL_BUSY}, {}),
                (PostgresDown("gone"), 503, {"error": POSTGRES_DOWN}, {}),
                (redis.ConnectionError("gone"), 503, {"error": REDIS_DOWN}, {}),
                (redis.TimeoutError("slow"), 503, {"error": REDIS_DOWN}, {})]
    for error, status, body, headers in expected:
        answer = refusal_of(error, log, request)
        assert (answer[0], json.loads(answer[1]), answer[2:]) == (status, body, (JSON, headers))
    assert not caplog.records
    try:
        raise KeyError("surprise")
    except KeyError as error:
        status, body, *_ = refusal_of(error, log, request)
    assert (status, json.loads(body)) == (500, {"error": INTERNAL_ERROR})
    [record] = caplog.records
    assert record.getMessage() == "GET /x failed" and record.exc_info[1].args == ("surprise",)


def test_the_page_escapes_text_and_keeps_row_order():
    page = render_page(load_page_template(), [(2, "<b>two</b>", "2026-11-27 10:00"),
                                              (1, "one", "2026-11-26 09:00")], 7).decode()
    assert page.index('data-id="2"') < page.index('data-id="1"')
    assert "&lt;b&gt;two&lt;/b&gt;" in page and "<b>two" not in page
    assert 'id="counter">7<' in page


def test_stats_count_requests_in_service_across_threads():
    stats, inside, release = Stats(), threading.Barrier(9), threading.Event()

    def request():
        with stats.serving("/"):
            inside.wait()
            release.wait()

    threads = [threading.Thread(target=request) for _ in range(8)]
    for thread in threads:
        thread.start()
    inside.wait()  # all eight are in service at once
    release.set()
    for thread in threads:
        thread.join()
    report = json.loads(stats.report())
    assert (report["in_service"], report["peak_in_service"], report["served"]) == (0, 8, 8)
    with stats.serving("/stats"), stats.serving("/stats/reset-peaks"):  # they report, uncounted
        assert json.loads(stats.report())["in_service"] == 0
    assert json.loads(stats.report())["served"] == 8
    assert json.loads(stats.report())["peak_in_service"] == 8  # reading changes nothing
    stats.reset_peaks()
    assert json.loads(stats.report())["peak_in_service"] == 0  # the peak starts afresh


def test_each_server_parses_its_own_knobs_and_defaults_the_rest(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql://x@127.0.0.1:1/x")
    monkeypatch.delenv("REDIS_URL", raising=False)
    sync = make_parser("sync_server", "the threaded server")
    settings = settings_from(sync.parse_args(["--workers", "2", "--connect-per-request"]))
    assert (settings.workers, settings.connect_per_request, settings.blocking) == (2, True, False)
    assert settings.database_url == "postgresql://x@127.0.0.1:1/x"
    assert settings.redis_url == "redis://127.0.0.1:6379/0"
    with pytest.raises(SystemExit):
        make_parser("async_server", "the event loop").parse_args(["--workers", "2"])


def documented_defaults():
    """{knob: default} as docs/setup.md's settings table states them: | `--cpu-ms X` | 0 | ..."""
    rows = re.findall(r"^\| `--([a-z-]+)[^|]*\| ([^|]+?) \|",
                      (ROOT / "docs" / "setup.md").read_text(), re.M)
    return {flag.replace("-", "_"): False if shown == "off" else number_or_word(shown)
            for flag, shown in rows if flag not in ("host", "port")}


def number_or_word(shown):
    try:
        return float(shown)
    except ValueError:
        return shown  # --gc's default is a name


@pytest.mark.parametrize("name", ["sync_server", "async_server"])
def test_each_knobs_default_is_the_one_the_settings_table_documents(name):
    """What a server runs with when given no flags (a knob it has no flag for included) is
    what docs/setup.md tells a learner: one default per knob (CONTRIBUTING.md, rule 5)."""
    defaults = settings_from(make_parser(name, "a server").parse_args([])).knobs()
    assert defaults == documented_defaults()


def test_sync_router_refuses_as_aiohttp_does():
    app = Application(middlewares=[], client_max_size=10)
    app.router.add_route("GET", "/", lambda request: "page")
    assert app.handle(Request(app, "GET", "/", read=bytes)) == "page"
    for method, path, status in [("GET", "/nope", 404), ("POST", "/", 405)]:
        with pytest.raises(BadRequest) as raised:
            app.handle(Request(app, method, path, read=bytes))
        assert raised.value.status == status
    assert raised.value.headers == {"Allow": "GET"}


def test_stats_time_the_garbage_collectors_pauses():
    stats = Stats()
    gc.collect()  # a full collection, timed by the callback Stats installed
    report = json.loads(stats.report())
    assert report["full_collections"] >= 1
    assert report["gc_pause_ms"] >= report["longest_gc_pause_ms"] > 0
    stats.reset_peaks()
    assert json.loads(stats.report())["longest_gc_pause_ms"] == 0


def request(outages, path, error=None):
    """One request through outages.watch(), as Stats.serving() makes it: it fails with `error`,
    or succeeds if there is none."""
    try:
        with outages.watch(path):
            if error:
                raise error
    except (PostgresDown, *REDIS_ERRORS):
        pass


def postgres_down():
    """PostgresDown as the sync server raises it: psycopg2's message runs over lines."""
    cause = ConnectionRefusedError('connection to server at "127.0.0.1", port 5432 failed: '
                                   "Connection refused\n\tIs the server running on that host?")
    error = PostgresDown(cause)
    error.__cause__ = cause
    return error


@pytest.fixture
def logged(caplog):
    """logged(): the lines logged so far, at WARNING and above."""
    caplog.set_level(logging.WARNING)
    return lambda: [record.getMessage() for record in caplog.records]


@pytest.fixture
def outages():
    """What a server's Stats holds: Outages with a log of its own."""
    return Outages(logging.getLogger("outages-under-test"))


def test_an_outage_is_two_log_lines_however_many_requests_it_refuses(outages, logged):
    threads = [threading.Thread(target=lambda: [request(outages, "/", postgres_down())
                                                for _ in range(100)]) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    request(outages, "/")
    first, last = logged()
    assert first == ('Postgres unreachable: ConnectionRefusedError: connection to server at '
                     '"127.0.0.1", port 5432 failed: Connection refused')
    assert re.fullmatch(r"Postgres back after [\d.]+ s; requests refused meanwhile: 800", last)


def test_a_success_ends_only_the_outages_its_path_was_refused_for(outages, logged):
    request(outages, "/", redis.ConnectionError("Error 111 connecting to 127.0.0.1:6379."))
    request(outages, "/items")  # an insert never needs Redis: it proves nothing
    assert logged() == ["Redis unreachable: ConnectionError: Error 111 connecting to "
                        "127.0.0.1:6379."]
    request(outages, "/")
    assert logged()[1].startswith("Redis back after ")


def test_a_success_that_overlapped_a_refusal_does_not_end_the_outage(outages, logged):
    request(outages, "/items", postgres_down())
    in_flight = outages.watch("/items")
    in_flight.__enter__()  # a request that began before the next refusal...
    request(outages, "/items", postgres_down())
    in_flight.__exit__(None, None, None)  # ...and succeeds after it, on a backend not yet ended
    assert len(logged()) == 1
    request(outages, "/items")
    assert logged()[1].endswith("requests refused meanwhile: 2")



@pytest.mark.slow  # a nested pytest session
def test_this_file_runs_without_postgres_or_redis():
    """As README.md says: with no DATABASE_URL or REDIS_URL (a fixture that needs them would
    stop the run, conftest.urls), every other test here passes."""
    env = {name: value for name, value in os.environ.items()
           if name not in ("DATABASE_URL", "REDIS_URL")}
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/test_common.py", "-k", "not without_postgres_or_redis"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert ran.returncode == 0 and " passed" in ran.stdout, ran.stdout + ran.stderr
    assert "skipped" not in ran.stdout, ran.stdout
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "`.venv/bin/python -m pytest tests/test_common.py`" in readme


def test_the_cpu_burner_burns_python_not_the_kernel():
    """--cpu-ms stands for work in Python: most of what burn_cpu costs is user time, as the
    OS counts it (an earlier burner spent about 80% of it in clock system calls)."""
    before = resource.getrusage(resource.RUSAGE_SELF)
    burn_cpu(300)
    after = resource.getrusage(resource.RUSAGE_SELF)
    user, system = after.ru_utime - before.ru_utime, after.ru_stime - before.ru_stime
    assert user > 4 * system and user + system >= 0.29, (user, system)
