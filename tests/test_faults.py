"""Postgres or Redis going away mid-life: 503 with a sentence, then 200 again, no restart;
under load, nothing acknowledged lost, nothing refused stored, and two log lines an outage.

These tests run their own Postgres and Redis, so they can stop and restart them.
"""

import collections
import http.client
import itertools
import json
import re
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass

import psycopg2
import pytest
from bench.launch import KINDS
from support import call, post_item, wait_until

from scripts import databases
from common import POSTGRES_DOWN, REDIS_DOWN, error_bytes
from scripts.reset_db import reset


def have_binaries():
    try:
        databases.postgres_bin("initdb")
    except databases.DatabaseError:
        return False
    return shutil.which("redis-server") is not None


pytestmark = [pytest.mark.slow,  # stops and starts Postgres and Redis
              pytest.mark.skipif(not have_binaries(),
                                 reason="needs the PostgreSQL server and redis-server programs")]


@pytest.fixture(scope="module")
def own_services():
    state_dir = tempfile.mkdtemp(prefix="todo-faults.")  # under /tmp: Postgres's user can enter
    postgres, redis = databases.Postgres(state_dir), databases.Redis(state_dir)
    postgres.create()
    postgres.start()
    postgres.create_database()
    redis.start()
    reset(postgres.url, redis.url)
    yield postgres, redis
    redis.stop()
    postgres.stop()
    shutil.rmtree(state_dir, ignore_errors=True)


def start_on_own_services(start_server, kind, own_services):
    """A server using this module's Postgres and Redis; it answers 200 before the fault."""
    postgres, redis = own_services
    server = start_server(kind, service_urls={"DATABASE_URL": postgres.url,
                                              "REDIS_URL": redis.url})
    assert call(server.port, "GET", "/").status == 200
    return server


def eventually_ok(port, seconds=20):
    """Poll GET / until it answers 200; return how many 503s came first."""
    deadline, unavailable = time.monotonic() + seconds, 0
    while True:
        reply = call(port, "GET", "/")
        if reply.status == 200:
            return unavailable
        assert reply.status == 503, reply.body
        unavailable += 1
        assert time.monotonic() < deadline, "still 503 after the service came back"
        time.sleep(0.2)


@pytest.mark.parametrize("kind", KINDS)
def test_redis_down_then_back(kind, own_services, start_server):
    server = start_on_own_services(start_server, kind, own_services)
    redis = own_services[1]
    redis.stop()
    try:
        page = call(server.port, "GET", "/")
        assert (page.status, page.json()) == (503, {"error": REDIS_DOWN})
        health = call(server.port, "GET", "/health")
        assert (health.status, health.json()) == (503, {"postgres": "ok", "redis": "down"})
    finally:
        redis.start()
    eventually_ok(server.port)
    assert server.process.poll() is None  # the same process, never restarted
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("kind", KINDS)
def test_postgres_down_then_back(kind, own_services, start_server):
    server = start_on_own_services(start_server, kind, own_services)
    postgres = own_services[0]
    postgres.stop()
    try:
        page = call(server.port, "GET", "/")
        assert (page.status, page.json()) == (503, {"error": POSTGRES_DOWN})
        insert = post_item(server.port, {"text": "lost?"})
        assert (insert.status, insert.json()) == (503, {"error": POSTGRES_DOWN})
        health = call(server.port, "GET", "/health")
        assert (health.status, health.json()) == (503, {"postgres": "down", "redis": "ok"})
    finally:
        postgres.start()
    eventually_ok(server.port)
    assert post_item(server.port, {"text": "after the restart"}).status == 201
    assert server.process.poll() is None
    assert "Traceback" not in server.log()


# Under load: what an operator sees when a service goes away while clients keep coming.
WRITERS, READERS = 24, 8  # each sends its next request when the last is answered
REFUSALS = 200  # each service stays down until this many requests were refused because of it
RECOVERY_S = 10  # a first success must come within this of the service's return
NO_ANSWER_S = 20  # an answer slower than this counts as a hang (a pool's wait is 10 s)
LINES_PER_OUTAGE = 4  # the log may say when it began and ended, and a little more


@dataclass
class Answer:
    text: str | None  # the insert's text, None for a page view
    status: int | None  # None: no answer (a hang, or a connection dropped)
    body: bytes
    sent: float  # time.monotonic() as the request left


class Load:
    """WRITERS threads inserting unique texts and READERS threads viewing the page, until
    the `with` block ends; every answer is kept, in the order they came."""

    def __init__(self, port, tag):
        self.port, self.tag = port, tag
        self.answers, self.stopping = [], threading.Event()
        self.threads = [threading.Thread(target=self.write, args=(n,)) for n in range(WRITERS)]
        self.threads += [threading.Thread(target=self.read) for _ in range(READERS)]

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopping.set()
        for thread in self.threads:
            thread.join()

    def write(self, n):
        for i in itertools.count():
            if self.stopping.is_set():
                return
            self.send(f"{self.tag} writer {n} item {i}")

    def read(self):
        while not self.stopping.is_set():
            self.send(None)

    def send(self, text):
        sent = time.monotonic()
        try:
            if text is None:
                reply = call(self.port, "GET", "/", timeout=NO_ANSWER_S)
            else:
                reply = call(self.port, "POST", "/items", json.dumps({"text": text}).encode(),
                             {"Content-Type": "application/json"}, timeout=NO_ANSWER_S)
            self.answers.append(Answer(text, reply.status, reply.body, sent))
        except (OSError, http.client.HTTPException) as error:
            self.answers.append(Answer(text, None, repr(error).encode(), sent))

    def count(self, status, body=None, since=0.0):
        return sum(1 for a in list(self.answers) if a.status == status and a.sent >= since
                   and (body is None or a.body == body))


def stored_texts(database_url, tag):
    with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT text FROM item WHERE text LIKE %s", (f"{tag} %",))
        found = {text for (text,) in cursor.fetchall()}
    conn.close()
    return found


def outage(service, load, refusal, success):
    """Stop `service` until the load has had REFUSALS answers `refusal`, start it again; how
    many requests sent after its return answered `success` within RECOVERY_S."""
    service.stop()
    try:
        wait_until(lambda: load.count(503, error_bytes(refusal)) >= REFUSALS, 30)
    finally:
        service.start()  # returns once it accepts connections
    back = time.monotonic()
    return wait_until(lambda: load.count(success, since=back), RECOVERY_S)


@pytest.mark.parametrize("kind", KINDS)
def test_outages_under_load_answer_503_lose_nothing_and_log_two_lines_each(
        kind, own_services, start_server):
    """Writers and readers keep coming while Postgres, then Redis, stops and starts again."""
    postgres, redis = own_services
    reset(postgres.url, redis.url)  # 20 rows: every page view renders them all
    server = start_on_own_services(start_server, kind, own_services)
    tag = f"load-{kind}"
    with Load(server.port, tag) as load:
        assert wait_until(lambda: load.count(201) >= 50, 30), "no inserts before the outages"
        assert outage(postgres, load, POSTGRES_DOWN, 201), "no insert after Postgres returned"
        assert outage(redis, load, REDIS_DOWN, 200), "no page view after Redis returned"
    statuses = collections.Counter(answer.status for answer in load.answers)
    refusals = collections.Counter(answer.body for answer in load.answers if answer.status == 503)
    print(f"{kind}: answers by status {dict(statuses)}, 503s by body {dict(refusals)}")

    # every answer a success or the outage's own 503: no 500, no hang, no dropped connection
    assert set(statuses) <= {200, 201, 503}, statuses
    assert set(refusals) <= {error_bytes(POSTGRES_DOWN), error_bytes(REDIS_DOWN)}, refusals

    # every insert answered 201 is in the table, none answered 503 is
    stored = stored_texts(postgres.url, tag)
    accepted = {answer.text for answer in load.answers if answer.text and answer.status == 201}
    refused = {answer.text for answer in load.answers if answer.text and answer.status == 503}
    assert accepted - stored == set(), f"{len(accepted - stored)} acknowledged inserts lost"
    assert refused & stored == set(), f"{len(refused & stored)} refused inserts stored"

    # the log: when each outage began and when it ended, with its count; no traceback
    assert call(server.port, "GET", "/").status == 200  # it ends what the load left open
    log = server.log().splitlines()[1:]  # after the start-up line
    print(f"{kind}: {len(log)} log lines, {sum('Traceback' in line for line in log)} "
          "tracebacks; the first ones:\n" + "\n".join(log[:12]))
    assert not [line for line in log if "Traceback" in line or " ERROR " in line]
    assert len(log) <= 2 * LINES_PER_OUTAGE, f"{len(log)} lines for two outages"
    for name, refusal in (("Postgres", POSTGRES_DOWN), ("Redis", REDIS_DOWN)):
        assert any(f" {name} unreachable: " in line for line in log), f"{name}: no first line"
        counted = re.findall(rf" {name} back after [\d.]+ s; requests refused meanwhile: (\d+)",
                             "\n".join(log))
        assert sum(map(int, counted)) == refusals[error_bytes(refusal)], (
            f"{name}: the log counted {counted}, the clients {refusals[error_bytes(refusal)]}")
