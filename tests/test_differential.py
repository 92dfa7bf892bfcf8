"""Both servers give the same answer to any request a client may send: Hypothesis generates
requests (methods known, unknown and lower-case; request-targets with percent-encoding, dot
segments, double slashes, absolute-form, queries; headers; JSON and other bodies of every
shape), each goes as the same bytes to the sync server and then to the async one, and the two
answers are compared: differential testing.

Compared: the status, the Content-Type and Allow headers, and the body, with what the shared
state changes between the two sends set aside: the page's view counter (GET / counts one), an
item's id (POST /items adds a row), the page's dates, and /stats's numbers (each server counts
itself). Not compared: Date and Server (each framework's own), header order, and Connection
(each server decides when to close: http.server closes where a body was left unread, aiohttp
reads it away). Neither server may answer a 5xx, nor an HTML page but GET /'s.

docs/servers.md's exceptions hold here too: a request aiohttp's parser refuses gets aiohttp's own
plain-text 400, and the same status with a JSON sentence from the sync server; no chunked body
is generated (tests/test_hostile.py has it).

The seed is fixed: each run tries the same requests. A difference found is shrunk by
Hypothesis to a minimal request, which the failure prints. The fast run tries
HYPOTHESIS_EXAMPLES requests, 300 unless set; the full run sets it in the thousands:
    HYPOTHESIS_EXAMPLES=5000 ./run_tests.sh tests/test_differential.py
"""

import http.client
import json
import os
import re
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from common import MAX_BODY_BYTES
from scripts.reset_db import reset

EXAMPLES = int(os.environ.get("HYPOTHESIS_EXAMPLES", "300"))
# database=None keeps no examples, but Hypothesis still caches what it reads of the project's
# source, as pytest collects this file: in the system's temporary folder, not ./.hypothesis.
set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "todo-hypothesis")
TIMEOUT_S = 10  # for each request's answer: a server that hangs fails the test, not the run

ROUTES = {"/": "GET", "/items": "POST", "/health": "GET", "/stats": "GET",
          "/stats/reset-peaks": "POST"}
KNOWN_METHODS = ["GET", "POST", "HEAD", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE",
                 "PROPFIND", "QUERY", "M-SEARCH", "PURGE"]
UNKNOWN_METHODS = ["get", "post", "Get", "FOO", "PRI", "DESCRIBE", "BREW", "GET_PARAMETER"]
TOKEN = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PRINTABLE = "".join(map(chr, range(0x21, 0x7F)))  # what a request-target may hold
SEGMENTS = ["", ".", "..", "%2e", "%2E%2e", "%2F", "%2f", "%", "%zz", "%FF", "%C3%A9", "+",
            ";a=1", "items", "health", "stats", "reset-peaks", "HEALTH", "index.html"]
ORIGINS = ["http://127.0.0.1", "http://localhost:8080", "HTTP://Example.COM", "https://[::1]",
           "http://user@host:80", "ftp://x"]  # absolute-form: RFC 9112 section 3.2.2
ODD_TARGETS = ["*", "health", "http://", "http:///health", "http:/health", "//",
               "http://x:99999/health", "http://[::1/health", "/\x01", "/\x7f", "/\xe9",
               "/health\xff", "/a\x00b"]
ODD_BODIES = [b"[" * 50_000, b" " * (MAX_BODY_BYTES + 1), b'{"text": "\\ud800"}',
              b'{"text": "a\\u0000b"}', b'{"text": "  "}', b"\xff\xfe", b"null", b"{"]
HEADER_NAMES = ["Accept", "Accept-Encoding", "Accept-Language", "User-Agent", "Content-Type",
                "Cookie", "X-Forwarded-For", "Origin", "Referer", "Cache-Control"]
HEADER_VALUES = ["*/*", "text/html", "application/json", "gzip, deflate", "curl/8.5.0",
                 "a=1; b=2", "no-cache", ""]


def percent_encoded(text, flags):
    """`text` with the characters whose flag is set percent-encoded, in either hex case."""
    return "".join(f"%{ord(char):02{'X' if flag > 1 else 'x'}}" if flag else char
                   for char, flag in zip(text, flags))


@st.composite
def spelled(draw, route):
    """`route` as is, or with some characters after its first "/" percent-encoded: "/%68ealth",
    "/stats%2Freset-peaks"."""
    if draw(st.booleans()):
        return route
    flags = draw(st.lists(st.integers(0, 2), min_size=len(route) - 1, max_size=len(route) - 1))
    return "/" + percent_encoded(route[1:], flags)


def weighted(*choices):
    """One of the (weight, strategy) choices, drawn in proportion to its weight; shrinking
    goes to the first."""
    return st.sampled_from([strategy for weight, strategy in choices for _ in range(weight)]
                           ).flatmap(lambda strategy: strategy)


segments = st.one_of(st.sampled_from(SEGMENTS), st.text(PRINTABLE.replace("/", "")
                                                        .replace("?", "").replace("#", ""),
                                                        max_size=6))
queries = st.one_of(st.just(""), st.text(PRINTABLE, max_size=12).map(lambda q: "?" + q))
methods = weighted((2, st.sampled_from(["GET", "POST"])), (3, st.sampled_from(KNOWN_METHODS)),
                   (1, st.sampled_from(UNKNOWN_METHODS) | st.text(TOKEN, min_size=1, max_size=8)))


def targets(route):
    """Request-targets for `route`, most of them spelled so that they reach it."""
    paths = weighted(
        (4, spelled(route)),  # maybe percent-encoded
        (1, st.lists(segments, max_size=4).map(lambda parts: "/" + "/".join(parts))),
        (1, st.sampled_from(["/.", "/..", "/", "/x/.."]).map(lambda dots: dots + route)),
    )  # the last: "//health", "/x/../health", "/./items"
    return weighted(
        (6, st.tuples(paths, queries).map("".join)),  # origin-form: "/items?x"
        (2, st.tuples(st.sampled_from(ORIGINS), paths, queries).map("".join)),  # absolute-form
        (1, st.sampled_from(ODD_TARGETS)),
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                 max_size=3),
    max_leaves=8)
items = weighted((3, st.fixed_dictionaries({"text": st.text(max_size=510)})),
                 (1, st.fixed_dictionaries({"text": st.text(max_size=510) | json_values},
                                           optional={"id": json_values, "": json_values})))

def as_json(values):
    """JSON bytes of the values, with \\u escapes or as UTF-8 (lone surrogates and all)."""
    return st.tuples(values, st.booleans()).map(
        lambda pair: json.dumps(pair[0], ensure_ascii=pair[1]).encode("utf-8", "surrogatepass"))


bodies = weighted(
    (1, st.just(b"")),
    (6, as_json(items)),
    (2, as_json(json_values)),
    (1, st.binary(max_size=100)),
    (1, st.text(max_size=50).map(lambda text: text.encode("utf-8", "surrogatepass"))),
    (1, st.sampled_from(ODD_BODIES)),
)
headers = st.lists(st.tuples(st.sampled_from(HEADER_NAMES) | st.from_regex(r"X-[A-Za-z0-9-]{1,12}",
                                                                           fullmatch=True),
                             st.sampled_from(HEADER_VALUES) | st.text(PRINTABLE + " ",
                                                                      max_size=20)),
                   max_size=4)


@dataclass(frozen=True)
class Sent:
    """One generated request; `raw` is every byte sent to each server."""
    method: str
    raw: bytes

    def __repr__(self):
        shown = self.raw if len(self.raw) <= 300 else self.raw[:300] + b"..."
        return f"Sent({shown!r})"


@st.composite
def requests(draw):
    route = draw(st.sampled_from(list(ROUTES)))
    method = draw(weighted((1, st.just(ROUTES[route])), (1, methods)))
    target = draw(st.sampled_from(["127.0.0.1:80", "localhost:443"]) if method == "CONNECT"
                  else targets(route))
    body = b"" if method == "CONNECT" else draw(bodies)  # CONNECT's bytes after it are a tunnel's
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1"]
    lines += [f"{name}: {value.strip()}" for name, value in draw(headers)]
    lines += [draw(st.sampled_from(["", "Connection: close", "Connection: keep-alive"]))]
    if len(body) <= MAX_BODY_BYTES and draw(st.booleans()):  # hostile tests announce more
        lines.append("Expect: 100-continue")
    if body or draw(st.booleans()):
        lines.append(f"Content-Length: {len(body)}")
    head = "\r\n".join(line for line in lines if line) + "\r\n\r\n"
    return Sent(method, head.encode("latin-1") + body)


@dataclass(frozen=True)
class Answer:
    """What a client sees of an answer, without what state or each framework makes differ."""
    status: int
    content_type: str | None
    allow: str | None
    body: object


def exchange(port, sent):
    """Send the request on a new connection; the answer that follows (after any 100 Continue)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT_S) as conn:
        conn.sendall(sent.raw)
        response = http.client.HTTPResponse(conn, method=sent.method)
        response.begin()
        body = response.read()
    content_type = response.getheader("Content-Type")
    return Answer(response.status, content_type, response.getheader("Allow"),
                  normalised(body, content_type))


def normalised(body, content_type):
    """The body, with what changes between the two sends (the counter, ids, dates, /stats's
    numbers) replaced by what stays."""
    if not body:  # HEAD's
        return body
    if content_type == "application/json":
        data = json.loads(body)
        if isinstance(data, dict) and "pid" in data:  # /stats: each server counts itself
            return sorted(data)
        return {**data, "id": "N"} if isinstance(data, dict) and "id" in data else data
    if content_type and content_type.startswith("text/html"):
        page = re.sub(rb'id="counter">\d+<', b'id="counter">N<', body)
        return re.sub(rb"<small>[^<]*</small>", b"<small/>", page)
    return body


def refused_by_aiohttps_parser(answer):
    return answer.status == 400 and (answer.content_type or "").startswith("text/plain")


@pytest.fixture(scope="module")
def servers(both_servers, urls):
    """Both servers, on data reset once: the comparison sets aside what each request changes."""
    reset(urls["DATABASE_URL"], urls["REDIS_URL"])
    return both_servers


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(sent=requests())
@example(sent=Sent("GET", b"GET /%68ealth HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))  # issue 34's
@example(sent=Sent("GET", b"GET //health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
@example(sent=Sent("GET", b"GET http://127.0.0.1/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
@example(sent=Sent("OPTIONS", b"OPTIONS /items HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
@example(sent=Sent("get", b"get /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"))
def test_both_servers_answer_any_request_alike(servers, sent):
    sync, async_ = (exchange(servers[kind].port, sent) for kind in ("sync", "async"))
    for kind, answer in (("sync", sync), ("async", async_)):
        assert answer.status < 500, f"{kind} answered {answer}"
        assert answer.status == 200 or "html" not in (answer.content_type or ""), \
            f"{kind} answered an HTML error page: {answer}"
    if refused_by_aiohttps_parser(async_):  # docs/servers.md's exception: aiohttp's own text
        assert (sync.status, sync.content_type) == (400, "application/json"), (sync, async_)
        assert sent.method == "HEAD" or set(sync.body) == {"error"}
    else:
        assert sync == async_
