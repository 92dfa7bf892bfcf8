"""Check for exercise 3: async_server.py --connect-per-request opens a Postgres connection for
each request and closes it after, at most --db-pool-size at once, and gives a request's slot
back whatever happens to it. Postgres itself says which connections served the page: each
page's query is held up by a table lock, where pg_stat_activity shows its backend and when
that backend's connection was opened."""

import threading

import pytest
from support import (call, item_table_locked, postgres_backends, wait_until,
                     waiting_on_item_lock)

from common import POOL_BUSY, POSTGRES_DOWN

EDIT = "async_pools.py and config.py"
AT_ONCE = 3  # page views held up together, fewer than the pool would hold
CAP = 3  # --db-pool-size in the tests of the cap


def start_async(start_server, *flags, service_urls=None):
    try:
        return start_server("async", *flags, service_urls=service_urls)
    except RuntimeError as error:
        pytest.fail(f"async_server.py {' '.join(flags)} did not start: edit {EDIT}.\n{error}")


def backends_of_held_views(server, database_url):
    """Send AT_ONCE page views while the item table is locked; return {backend pid: opened at}
    of the connections their queries waited on, and when the lock was taken."""
    statuses = []
    with item_table_locked(database_url) as locked_at:
        views = [threading.Thread(target=lambda: statuses.append(call(server.port, "GET", "/")
                                                                 .status))
                 for _ in range(AT_ONCE)]
        for view in views:
            view.start()
        waiting = wait_until(lambda: all_there(waiting_on_item_lock(database_url)))
    for view in views:
        view.join()
    assert waiting, f"{AT_ONCE} page views at once did not all reach Postgres: edit {EDIT}"
    assert statuses == [200] * AT_ONCE
    return waiting, locked_at


def all_there(backends):
    return backends if len(backends) == AT_ONCE else None


def more_than(count, backends):
    return backends if len(backends) > count else None


def test_one_new_postgres_connection_per_request(start_server, fresh_data, urls):
    server = start_async(start_server, "--connect-per-request")
    assert server.stats()["pg_connections_opened"] == 0, (
        f"with --connect-per-request there should be no pool opened at start-up: edit {EDIT}")
    seen = {}
    for _ in range(2):
        backends, locked_at = backends_of_held_views(server, urls["DATABASE_URL"])
        reused = [pid for pid, opened in backends.items() if opened < locked_at]
        assert not reused, (
            f"Postgres says {len(reused)} of {AT_ONCE} page views ran on connections opened "
            f"before they were sent: they came from a pool. Edit {EDIT} so that "
            "--connect-per-request opens a connection for each request.")
        seen.update(backends)
    assert len(seen) == 2 * AT_ONCE, f"{2 * AT_ONCE} views shared {len(seen)} connections"
    closed = wait_until(lambda: not set(seen) & set(postgres_backends(urls["DATABASE_URL"])))
    assert closed, (f"the connections of finished requests stay open: close each one "
                        f"after its request in {EDIT}")
    counted = server.stats()["pg_connections_opened"]
    assert counted == len(seen), (
        f"Postgres saw {len(seen)} connections opened; /stats counts {counted}: count each "
        f"connection you open with self.stats.connection_opened() in {EDIT}")


def test_the_pool_is_still_the_default(start_server, fresh_data, urls):
    server = start_async(start_server)
    backends, locked_at = backends_of_held_views(server, urls["DATABASE_URL"])
    assert all(opened < locked_at for opened in backends.values()), (
        "without --connect-per-request, requests should use the pool opened at start-up")
    assert server.stats()["pg_connections_opened"] == 10


def test_at_most_db_pool_size_connections_at_once(start_server, fresh_data, urls):
    """Twice CAP views at once hold CAP connections: Postgres allows few (100 by default, and
    wrk -c500 got "too many clients" without the cap); the others wait in the server."""
    server = start_async(start_server, "--connect-per-request", "--db-pool-size", str(CAP))
    statuses = []
    with item_table_locked(urls["DATABASE_URL"]):
        views = [threading.Thread(target=lambda: statuses.append(call(server.port, "GET", "/")
                                                                 .status))
                 for _ in range(2 * CAP)]
        for view in views:
            view.start()
        arrived = wait_until(lambda: server.stats()["in_service"] == 2 * CAP)
        held = wait_until(lambda: len(waiting_on_item_lock(urls["DATABASE_URL"])) >= CAP)
        over = wait_until(lambda: more_than(CAP, waiting_on_item_lock(urls["DATABASE_URL"])), 3)
    for view in views:
        view.join()
    assert arrived and held, f"{2 * CAP} page views at once did not reach Postgres: edit {EDIT}"
    assert not over, (
        f"with --db-pool-size {CAP}, Postgres saw {len(over)} connections of {2 * CAP} page "
        f"views at once: keep at most --db-pool-size open, as sync_pools.py's semaphore does "
        f"(edit {EDIT})")
    assert statuses == [200] * (2 * CAP)


def test_a_failed_connect_gives_its_slot_back(start_server, fresh_data, urls):
    """With no such database every connect fails: more failures than slots must each still
    get a prompt 'Postgres is not answering', not wait for a slot that was never given back."""
    missing = {**urls, "DATABASE_URL": urls["DATABASE_URL"].rsplit("/", 1)[0] + "/no_such_db"}
    server = start_async(start_server, "--connect-per-request", "--db-pool-size", "2",
                         service_urls=missing)
    replies = [call(server.port, "GET", "/") for _ in range(3)]
    busy = sum(POOL_BUSY in reply.text for reply in replies)
    assert not busy, (
        f"after 2 failed connects, {busy} of 3 requests found no free slot: give a request's "
        f"slot back on every path, a failed connect too (try/finally; edit {EDIT})")
    assert all(reply.status == 503 and POSTGRES_DOWN in reply.text for reply in replies), (
        f"a failed connect should be a 503 saying Postgres is not answering, got "
        f"{[(reply.status, reply.text[:60]) for reply in replies]}: catch asyncpg.PostgresError "
        f"too (e.g. no such database) in {EDIT}")
