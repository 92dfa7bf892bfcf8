"""Both servers answer one scripted sequence with the same statuses and the same bytes."""

import re

import pytest
from bench.launch import KINDS
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


def run_sequence(port):
    """Every request of the script; returns what a client saw, in order."""
    seen = [("page", call(port, "GET", "/").status)]
    for data in VALID:
        reply = post_item(port, data)
        seen.append(("valid", reply.status, reply.json()))
    for what, body, _ in BAD:
        reply = post_item(port, body)
        seen.append((what, reply.status, reply.json()))
    for method, path, _ in OTHER:
        reply = call(port, method, path)
        body = reply.json() if reply.body else None  # a HEAD response has no body
        seen.append((method, path, reply.status, reply.headers.get("Allow"), body))
    page = call(port, "GET", "/")
    seen.append(("page", page.status, page.headers["Content-Type"]))
    return seen, page.text


@pytest.fixture(scope="module")
def sequences(both_servers, urls):
    from scripts.reset_db import reset
    results = {}
    for kind in KINDS:
        reset(urls["DATABASE_URL"], urls["REDIS_URL"])
        results[kind] = run_sequence(both_servers[kind].port)
        results[kind + " rows"] = count_rows(urls["DATABASE_URL"])
    return results


def test_same_statuses_and_bodies(sequences):
    assert sequences["sync"][0] == sequences["async"][0]


def test_same_page_for_same_data(sequences):
    undated = [re.sub(r"<small>[^<]*</small>", "<small/>", sequences[kind][1]) for kind in KINDS]
    assert undated[0] == undated[1]
    assert "<small>2017-05-01 10:00</small>" in sequences["sync"][1]


@pytest.mark.parametrize("kind", KINDS)
def test_expected_statuses(sequences, kind):
    seen = sequences[kind][0]
    assert [entry[1] for entry in seen[1:1 + len(VALID)]] == [201] * len(VALID)
    bad = seen[1 + len(VALID):1 + len(VALID) + len(BAD)]
    assert [(entry[0], entry[1]) for entry in bad] == [(what, status) for what, _, status in BAD]
    assert all(set(entry[2]) == {"error"} and entry[2]["error"].endswith(".") for entry in bad)
    other = seen[1 + len(VALID) + len(BAD):-1]
    assert [entry[2] for entry in other] == [status for _, _, status in OTHER]
    assert seen[-1] == ("page", 200, "text/html; charset=utf-8")


@pytest.mark.parametrize("kind", KINDS)
def test_bad_input_inserts_nothing(sequences, kind):
    assert sequences[kind + " rows"] == 20 + len(VALID)


def test_messages_say_what_is_wrong(sequences):
    errors = {entry[0]: entry[2]["error"] for entry in sequences["sync"][0]
              if len(entry) == 3 and entry[1] in (400, 413)}
    assert errors["unknown fields"] == \
        'Unknown field(s): "date_posted", "id"; only "text" is accepted.'
    assert errors["text over 500 characters"] == \
        'Field "text" must be at most 500 characters (it has 501).'
    assert errors["body over 64 KiB"] == "Request body is larger than 65536 bytes."
    method_not_allowed = [entry for entry in sequences["sync"][0] if entry[0] == "GET"
                          and entry[1] == "/items"][0]
    assert method_not_allowed[3] == "POST"
    assert method_not_allowed[4] == {"error": "Method GET is not allowed here; use POST."}
