"""Check for exercise 3: async_server.py --connect-per-request opens a connection per request."""

import pytest
from support import call

EDIT = "async_server.py"


def start_async(start_server, *flags):
    try:
        return start_server("async", *flags)
    except RuntimeError as error:
        pytest.fail(f"async_server.py {' '.join(flags)} did not start: edit {EDIT}.\n{error}")


def test_one_new_postgres_connection_per_request(start_server, fresh_data):
    server = start_async(start_server, "--connect-per-request")
    assert server.stats()["pg_connections_opened"] == 0, (
        f"with --connect-per-request there should be no pool opened at start-up: edit {EDIT}")
    for _ in range(5):
        assert call(server.port, "GET", "/").status == 200
    assert call(server.port, "POST", "/items", b'{"text": "per request"}').status == 201
    opened = server.stats()["pg_connections_opened"]
    assert opened == 6, f"6 requests opened {opened} Postgres connections: edit {EDIT}"


def test_the_pool_is_still_the_default(start_server, fresh_data):
    server = start_async(start_server)
    for _ in range(5):
        call(server.port, "GET", "/")
    assert server.stats()["pg_connections_opened"] == 10
