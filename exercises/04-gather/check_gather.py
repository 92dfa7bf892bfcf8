"""Check for exercise 4: the page's Postgres query and its Redis increment are in flight at
once. Each is held up in turn, from outside the server: the item table locked in Postgres
(the Redis counter must rise while the query waits), then Redis paused for writes (the query
must reach Postgres while the increment waits). Both orders one after the other fail."""

import threading
from contextlib import contextmanager

import redis
from support import call, counter_value, item_table_locked, wait_until, waiting_on_item_lock

EDIT = "async_server.py (index)"
HELD_S = 5  # how long one service is held up: what the other does meanwhile is counted


def start_page_view(server):
    """One GET / in flight on a thread of its own: join() it, then read its reply."""
    viewer = threading.Thread(target=lambda: viewer.replies.append(call(server.port, "GET", "/")))
    viewer.replies = []
    viewer.start()
    return viewer


@contextmanager
def redis_writes_paused(redis_url):
    """Redis holds every write command (INCR among them) until the block ends."""
    client = redis.Redis.from_url(redis_url)
    client.execute_command("CLIENT", "PAUSE", 30000, "WRITE")
    try:
        yield
    finally:
        client.execute_command("CLIENT", "UNPAUSE")
        client.close()


def test_counter_rises_while_the_query_is_held_up(start_server, fresh_data, urls):
    server = start_server("async")
    with item_table_locked(urls["DATABASE_URL"]):
        view = start_page_view(server)
        wait_until(lambda: counter_value(urls["REDIS_URL"]), HELD_S)
        counted_while_held = counter_value(urls["REDIS_URL"])
        query_waiting = len(waiting_on_item_lock(urls["DATABASE_URL"]))
    assert query_waiting == 1, "the page's query should still wait on the locked table"
    view.join()
    assert view.replies[0].status == 200
    assert counted_while_held == 1, (
        "the Redis increment waited until the Postgres query finished: they ran one after the "
        f"other. Edit {EDIT} so both are in flight at once.")


def test_query_reaches_postgres_while_redis_is_held_up(start_server, fresh_data, urls):
    server = start_server("async")
    with item_table_locked(urls["DATABASE_URL"]), redis_writes_paused(urls["REDIS_URL"]):
        view = start_page_view(server)
        queried = wait_until(lambda: waiting_on_item_lock(urls["DATABASE_URL"]), HELD_S)
        counted = counter_value(urls["REDIS_URL"])
    assert counted == 0, "Redis should still hold the increment"
    view.join()
    assert view.replies[0].status == 200
    assert len(queried) == 1, (
        "the Postgres query waited until the Redis increment finished: they ran one after "
        f"the other. Edit {EDIT} so both are in flight at once.")
