"""Postgres and Redis for sync_server.py: psycopg2 and redis-py, pools that threads wait on.

What is a driver's and not the concurrency model's lives here, and its mirror image in
async_pools.py: how callers queue for a connection, how a connection is counted, what a
broken one costs, how a query names its parameters. Both modules offer the same names
(make_postgres, make_redis, INSERT_ITEM), so the servers differ only where they wait.
"""

import threading
from contextlib import contextmanager

import psycopg2
import psycopg2.extensions
import psycopg2.pool
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from common import (CONNECT_TIMEOUT_S, POOL_TIMEOUT_S, REDIS_ERRORS, PoolBusy, PostgresDown,
                    ValueRefused)

INSERT_ITEM = "INSERT INTO item (text) VALUES (%s) RETURNING id"  # psycopg2's placeholder
POSTGRES_ERRORS = (psycopg2.OperationalError, psycopg2.InterfaceError)
# A value refused: by Postgres (SQLSTATE class 22, "data exception": an integer out of range),
# or by psycopg2 before sending it (ValueError: a NUL in text, a lone surrogate)
REFUSED_VALUES = (psycopg2.DataError, ValueError)


def make_postgres(settings, stats):
    """The pool, or with --connect-per-request a connection per request; nothing connects
    until open()."""
    if settings.connect_per_request:
        return ConnectionPerRequest(settings, stats)
    return Postgres(settings, stats)


class Postgres:
    """psycopg2 connections shared by many threads. psycopg2's pool raises when it is empty
    instead of waiting, and closes connections above minconn: so it is fixed at its size,
    and a semaphore makes threads queue for it."""

    def __init__(self, settings, stats):
        self.url = settings.database_url
        self.size = settings.db_pool_size
        self.stats = stats
        self.slots = threading.BoundedSemaphore(self.size)
        self.pool = None

    def open(self):
        """Open every pooled connection now, before the first request."""
        try:
            self.pool = psycopg2.pool.ThreadedConnectionPool(
                self.size, self.size, self.url, connection_factory=self.counting_connection,
                connect_timeout=CONNECT_TIMEOUT_S)  # waits on Postgres
        except POSTGRES_ERRORS as error:
            raise PostgresDown(error) from error

    def fetch(self, query, *args):
        """Run one statement on a lent connection; return its rows."""
        with self.connection() as conn, conn.cursor() as cursor:
            cursor.execute(query, args or None)  # waits on Postgres
            return cursor.fetchall()

    def is_up(self):
        """GET /health's question: does Postgres answer a query now?"""
        try:
            return bool(self.fetch("SELECT 1"))  # waits on Postgres
        except (PoolBusy, PostgresDown):
            return False

    @contextmanager
    def connection(self):
        """Lend a connection; PoolBusy if none comes free in time, PostgresDown if it fails."""
        if not self.slots.acquire(timeout=POOL_TIMEOUT_S):  # waits for a free connection
            raise PoolBusy
        conn, broken = None, False
        try:
            conn = self.take()  # waits on Postgres if it must connect
            yield conn
        except REFUSED_VALUES as error:  # the request's fault; the connection is fine
            raise ValueRefused from error
        except POSTGRES_ERRORS as error:
            broken = True
            raise PostgresDown(error) from error
        finally:
            if conn:
                self.give_back(conn, broken)
            self.slots.release()

    def take(self):
        return self.pool.getconn()  # waits on Postgres if it must reconnect

    def give_back(self, conn, broken):
        # psycopg2's pool (putconn) would drop a connection already closed and close one that
        # lost its server (transaction status UNKNOWN), but roll back and keep one in a failed
        # transaction, and it cannot see a connection Postgres closed while it sat idle: that
        # one fails on its next query (an OperationalError, AdminShutdown included). So any
        # connection that failed is closed here, whatever state psycopg2 reports.
        self.pool.putconn(conn, close=broken)  # a broken one is closed, not lent again

    def close(self):
        if self.pool:
            self.pool.closeall()

    def counting_connection(self, *args, **kwargs):
        """psycopg2's connection_factory: a connection that counts itself and runs each
        statement in its own transaction, as asyncpg does: no BEGIN/COMMIT round trips
        around a single query."""
        conn = psycopg2.extensions.connection(*args, **kwargs)
        conn.autocommit = True
        self.stats.connection_opened()
        return conn


class ConnectionPerRequest(Postgres):
    """--connect-per-request, as Django did by default: a new connection (a TCP handshake,
    authentication, a backend process) for each request, closed after it. The semaphore
    still holds them to --db-pool-size at once."""

    def open(self):
        """No pool: nothing to open before the first request."""

    def take(self):
        return psycopg2.connect(self.url, connection_factory=self.counting_connection,
                                connect_timeout=CONNECT_TIMEOUT_S)  # waits on Postgres

    def give_back(self, conn, broken):
        conn.close()


def make_redis(settings):
    """redis-py with a pool that waits for a free connection; its default pool raises."""
    pool = redis.BlockingConnectionPool.from_url(
        settings.redis_url, max_connections=settings.db_pool_size, timeout=POOL_TIMEOUT_S,
        retry=Retry(NoBackoff(), 1))  # one retry replaces a connection Redis dropped
    return redis.Redis.from_pool(pool)


def open_redis(client):
    """Open every pooled Redis connection now, as the Postgres pool does: a pool that connects
    on demand needs a descriptor mid-request, and at the open-files limit that request fails."""
    pool = client.connection_pool
    lent = [pool.get_connection() for _ in range(pool.max_connections)]  # waits on Redis
    for conn in lent:
        pool.release(conn)


def redis_is_up(client):
    """GET /health's question: does Redis answer a PING now?"""
    try:
        return client.ping()  # waits on Redis
    except REDIS_ERRORS:
        return False
