"""Check for exercise 4: the Redis increment must not wait for the Postgres query."""

import threading
import time

import psycopg2
from support import call, counter_value

EDIT = "async_server.py (index)"


def test_counter_rises_while_the_query_is_held_up(start_server, fresh_data, urls):
    server = start_server("async")
    holder = psycopg2.connect(urls["DATABASE_URL"])  # a transaction that keeps SELECT waiting
    holder.cursor().execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
    replies = []
    viewer = threading.Thread(target=lambda: replies.append(call(server.port, "GET", "/")))
    viewer.start()
    try:
        deadline = time.monotonic() + 5
        while counter_value(urls["REDIS_URL"]) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        counted_while_held = counter_value(urls["REDIS_URL"])
    finally:
        holder.rollback()  # lets the query through
        holder.close()
    viewer.join()
    assert replies[0].status == 200
    assert counted_while_held == 1, (
        "the Redis increment waited until the Postgres query finished: they ran one after the "
        f"other. Edit {EDIT} so both are in flight at once.")
