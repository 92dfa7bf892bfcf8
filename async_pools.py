"""Postgres and Redis for async_server.py: asyncpg and redis.asyncio, pools that coroutines
wait on.

What is a driver's and not the concurrency model's lives here, and its mirror image in
sync_pools.py: how callers queue for a connection, how a connection is counted, what a
broken one costs, how a query names its parameters. Both modules offer the same names
(make_postgres, make_redis, INSERT_ITEM), so the servers differ only where they wait.
"""

import asyncio
import logging
from contextlib import asynccontextmanager, suppress

import asyncpg
import redis.asyncio
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from common import (CONNECT_TIMEOUT_S, POOL_TIMEOUT_S, REDIS_ERRORS, PoolBusy, PostgresDown,
                    ValueRefused)

INSERT_ITEM = "INSERT INTO item (text) VALUES ($1) RETURNING id"  # asyncpg's placeholder
POSTGRES_ERRORS = (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError,
                   asyncpg.exceptions.OperatorInterventionError,  # OSError: its socket
                   asyncpg.InternalClientError)  # a connection in a state asyncpg refuses
# A value refused, by Postgres (SQLSTATE class 22) or by asyncpg, which cannot encode 2**31 as
# int4: asyncpg.DataError. Its namesake under InterfaceError (raised by nothing in 0.32) too.
REFUSED_VALUES = (asyncpg.DataError, asyncpg.exceptions._base.DataError)


def make_postgres(settings, stats):
    """The pool; nothing connects until open()."""
    # While Postgres is down, asyncpg logs a traceback per reconnect attempt; the servers'
    # one-line warnings already say Postgres is down.
    logging.getLogger("asyncpg.pool").setLevel(logging.ERROR)
    return Postgres(settings, stats)


class Postgres:
    """asyncpg's pool, fixed at its size: coroutines queue for a connection while the loop
    serves others. A connection that failed is ended, and the pool opens another in its place
    when it is next lent."""

    def __init__(self, settings, stats):
        self.url = settings.database_url
        self.size = settings.db_pool_size
        self.stats = stats
        self.pool = None

    async def open(self):
        """Open every pooled connection now, before the first request."""
        try:
            self.pool = await asyncpg.create_pool(
                self.url, min_size=self.size, max_size=self.size, timeout=CONNECT_TIMEOUT_S,
                max_inactive_connection_lifetime=0, init=self.count_connection,
                reset=self.keep_session)  # yields to the event loop
        except (*POSTGRES_ERRORS, asyncpg.PostgresError) as error:
            raise PostgresDown(error) from error

    async def fetch(self, query, *args):
        """Run one statement on a lent connection; return its rows."""
        async with self.connection() as conn:  # yields to the event loop
            return await conn.fetch(query, *args)  # yields to the event loop

    async def is_up(self):
        """GET /health's question: does Postgres answer a query now?"""
        try:
            return bool(await self.fetch("SELECT 1"))  # yields to the event loop
        except (PoolBusy, PostgresDown):
            return False

    @asynccontextmanager
    async def connection(self):
        """Lend a connection; PoolBusy if none comes free in time, PostgresDown if it fails."""
        try:
            conn = await self.pool.acquire(timeout=POOL_TIMEOUT_S)  # yields to the event loop
        except asyncio.TimeoutError:
            raise PoolBusy from None
        except POSTGRES_ERRORS as error:
            raise PostgresDown(error) from error
        try:
            yield conn
        except REFUSED_VALUES as error:  # the request's fault; the connection is fine
            raise ValueRefused from error
        except POSTGRES_ERRORS as error:
            # asyncpg's pool (0.32, pool.py) takes back by itself a connection whose socket
            # closed, and lends it again only once reconnected; any other it lends again as
            # it is. Postgres stopping sends each connection a FATAL message, then closes it:
            # one idle in the pool reads the message outside any query, and until the close
            # arrives it is lent in a state its next query refuses (InternalClientError:
            # "cannot switch to state 12; another operation (2) is in progress"). So end a
            # connection that failed, whatever the error: release() then puts back an empty
            # slot that connects anew. One already taken back raises InterfaceError here.
            with suppress(asyncpg.InterfaceError):
                conn.terminate()
            raise PostgresDown(error) from error
        finally:
            await self.pool.release(conn)  # yields to the event loop

    async def close(self):
        if self.pool:
            await self.pool.close()  # yields to the event loop

    async def count_connection(self, conn):
        """asyncpg's init: called once for each connection the pool opens."""
        self.stats.connection_opened()

    async def keep_session(self, conn):
        """asyncpg's default reset costs a round trip per request (RESET ALL, UNLISTEN, ...);
        psycopg2's pool hands connections back as they are, and neither server changes
        session state. An open transaction is still rolled back by asyncpg itself."""


def make_redis(settings):
    """redis.asyncio with a pool that waits for a free connection; its default pool raises."""
    pool = redis.asyncio.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.db_pool_size, timeout=POOL_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1))  # one retry replaces a connection Redis dropped
    return redis.asyncio.Redis.from_pool(pool)


async def open_redis(client):
    """Open every pooled Redis connection now, as the Postgres pool does: a pool that connects
    on demand needs a descriptor mid-request, and at the open-files limit that request fails."""
    pool = client.connection_pool
    lent = [await pool.get_connection() for _ in range(pool.max_connections)]  # waits on Redis
    for conn in lent:
        await pool.release(conn)
    # A stop asked for meanwhile (SIGTERM, Ctrl-C) reached us as a cancellation, which Python
    # 3.11's asyncio.wait_for, inside redis-py, loses if its own wait ends at that moment
    # (gh-86296): the server would start serving, deaf to the one signal it was sent.
    if getattr(asyncio.current_task(), "cancelling", lambda: 0)():  # 3.11+ counts requests
        raise asyncio.CancelledError


async def redis_is_up(client):
    """GET /health's question: does Redis answer a PING now?"""
    try:
        return await client.ping()  # yields to the event loop
    except REDIS_ERRORS:
        return False
