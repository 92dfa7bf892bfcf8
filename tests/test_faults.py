"""Postgres or Redis going away mid-life: 503 with a sentence, then 200 again, no restart.

These tests run their own Postgres and Redis, so they can stop and restart them.
"""

import shutil
import tempfile
import time

import pytest
from bench.launch import KINDS
from support import call, post_item

from scripts import databases
from common import POSTGRES_DOWN, REDIS_DOWN
from scripts.reset_db import reset


def have_binaries():
    try:
        databases.postgres_bin("initdb")
    except databases.DatabaseError:
        return False
    return shutil.which("redis-server") is not None


pytestmark = pytest.mark.skipif(not have_binaries(),
                                reason="needs the PostgreSQL server and redis-server programs")


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
