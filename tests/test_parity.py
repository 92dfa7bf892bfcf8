"""Both servers answer one scripted sequence with the same statuses and the same bytes."""

import re
from dataclasses import dataclass

import pytest
from bench.launch import KINDS
from scripts.reset_db import reset
from support import call, count_rows, post_item

from common import MAX_BODY_BYTES

VALID = [
    {"text": "  Buy milk  "},
    {"text": "x" * 500},
    {"text": "牛乳を買う"},
    {"text": "<script>alert(1)</script>"},
]
BAD = [  # (what it is, raw body, expected status)
    ("empty body", b"", 400),
    ("invalid JSON", b'{"text": ', 400),
    ("invalid UTF-8", b'{"text": "\xff\xfe"}', 400),
    ("absurdly deep nesting", b"[" * 50_000, 400),
    ("not an object", b'["text"]', 400),
    ("missing text", b"{}", 400),
    ("text not a string", b'{"text": 42}', 400),
    ("blank text", b'{"text": "   "}', 400),
    ("text over 500 characters", b'{"text": "' + b"y" * 501 + b'"}', 400),
    ("unknown fields", b'{"text": "a", "id": 1, "date_posted": "x"}', 400),
    ("NUL character", b'{"text": "a\\u0000b"}', 400),
    ("lone surrogate", b'{"text": "\\ud800"}', 400),
    ("body over 64 KiB", b" " * (MAX_BODY_BYTES + 1), 413),
]
OTHER = [  # (method, path, expected status)
    ("GET", "/no-such-page", 404),
    ("GET", "/items", 405),
    ("DELETE", "/", 405),
    ("PUT", "/health", 405),
    ("HEAD", "/", 405),
    ("GET", "/health", 200),
]


@dataclass(frozen=True)
class Answer:
    """What a client saw of one request of the script."""
    request: str  # "GET /", "valid", a BAD case's name, or "METHOD /path"
    status: int
    body: object = None  # the JSON body; None for a page and for HEAD, which has no body
    allow: str | None = None  # the Allow header, which a 405 must send
    content_type: str | None = None


@dataclass
class Run:
    """One server's answers to the script, part by part, and what it left behind."""
    first_page: Answer
    valid: list  # an Answer for each of VALID, in order
    bad: list  # ... of BAD
    other: list  # ... of OTHER
    last_page: Answer
    page: str  # the last page's HTML
    rows: int  # item rows in Postgres afterwards

    def answers(self):
        return [self.first_page, *self.valid, *self.bad, *self.other, self.last_page]


def run_sequence(port, database_url):
    """Every request of the script, in order, then the rows Postgres holds."""
    first_page = Answer("GET /", call(port, "GET", "/").status)
    valid = []
    for data in VALID:
        reply = post_item(port, data)
        valid.append(Answer("valid", reply.status, reply.json()))
    bad = []
    for what, body, _ in BAD:
        reply = post_item(port, body)
        bad.append(Answer(what, reply.status, reply.json()))
    other = []
    for method, path, _ in OTHER:
        reply = call(port, method, path)
        other.append(Answer(f"{method} {path}", reply.status,
                            reply.json() if reply.body else None, reply.headers.get("Allow")))
    page = call(port, "GET", "/")
    last_page = Answer("GET /", page.status, content_type=page.headers["Content-Type"])
    return Run(first_page=first_page, valid=valid, bad=bad, other=other, last_page=last_page,
               page=page.text, rows=count_rows(database_url))


@pytest.fixture(scope="module")
def runs(both_servers, urls):
    """{kind: Run}, each server's script run on freshly reset data."""
    results = {}
    for kind in KINDS:
        reset(urls["DATABASE_URL"], urls["REDIS_URL"])
        results[kind] = run_sequence(both_servers[kind].port, urls["DATABASE_URL"])
    return results


def test_same_statuses_and_bodies(runs):
    assert runs["sync"].answers() == runs["async"].answers()


def test_same_page_for_same_data(runs):
    undated = [re.sub(r"<small>[^<]*</small>", "<small/>", runs[kind].page) for kind in KINDS]
    assert undated[0] == undated[1]
    assert "<small>2017-05-01 10:00</small>" in runs["sync"].page


@pytest.mark.parametrize("kind", KINDS)
def test_expected_statuses(runs, kind):
    run = runs[kind]
    assert [answer.status for answer in run.valid] == [201] * len(VALID)
    assert [(answer.request, answer.status) for answer in run.bad] == \
        [(what, status) for what, _, status in BAD]
    assert all(set(answer.body) == {"error"} and answer.body["error"].endswith(".")
               for answer in run.bad)
    assert [answer.status for answer in run.other] == [status for _, _, status in OTHER]
    assert (run.last_page.status, run.last_page.content_type) == \
        (200, "text/html; charset=utf-8")


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_inserts_nothing(runs, kind):
    assert runs[kind].rows == 20 + len(VALID)


def test_messages_say_what_is_wrong(runs):
    errors = {answer.request: answer.body["error"] for answer in runs["sync"].bad}
    assert errors["unknown fields"] == \
        'Unknown field(s): "date_posted", "id"; only "text" is accepted.'
    assert errors["text over 500 characters"] == \
        'Field "text" must be at most 500 characters (it has 501).'
    assert errors["body over 64 KiB"] == "Request body is larger than 65536 bytes."
    method_not_allowed = next(answer for answer in runs["sync"].other
                              if answer.request == "GET /items")
    assert method_not_allowed.allow == "POST"
    assert method_not_allowed.body == {"error": "Method GET is not allowed here; use POST."}
