"""Helpers the tests and the exercise checks share: plain HTTP as a client sends it, requests
released together, what a page shows and what the database and Redis hold.

pytest.ini puts the project and tests/ on the path, so a test or an
exercise check imports these by name: `from support import call`.
"""

import hashlib
import http.client
import json
import re
import shutil
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

from scripts.reset_db import count_rows, counter_value  # noqa: F401 (for the tests)
from scripts.databases import free_port  # noqa: F401 (for the tests)

from bench.launch import wait_until  # noqa: F401 (for the tests: the project's one poll)

ROOT = Path(__file__).resolve().parent.parent
RELEASED = ROOT / "exercises" / "released.txt"
NOT_COPIED = (".git", ".venv", "results", "__pycache__", ".pytest_cache")


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode("utf-8")


def call(port, method, path, body=None, headers=None, timeout=30):
    """One request on a new connection, as a browser or curl would send it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return Reply(response.status, dict(response.getheaders()), response.read())
    finally:
        conn.close()


def reset_peaks(server):
    """POST /stats/reset-peaks: the server's peaks count from here."""
    return call(server.port, "POST", "/stats/reset-peaks")


def post_item(port, data):
    body = data if isinstance(data, bytes) else json.dumps(data).encode()
    return call(port, "POST", "/items", body, {"Content-Type": "application/json"})


def at_once(calls):
    """Run each callable in its own thread, all released together; return their results."""
    start, results = threading.Barrier(len(calls)), []

    def run(call_):
        start.wait()
        results.append(call_())

    threads = [threading.Thread(target=run, args=(call_,)) for call_ in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def counter_on(page):
    return int(re.search(r'id="counter">(\d+)<', page).group(1))


def item_ids_on(page):
    return [int(found) for found in re.findall(r'data-id="(\d+)"', page)]


def stored_text(database_url, item_id):
    with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT text FROM item WHERE id = %s", (item_id,))
        row = cursor.fetchone()
    conn.close()
    return row and row[0]


@contextmanager
def item_table_locked(database_url):
    """Hold the item table locked, so every query of it waits where Postgres can be asked
    about it; yields Postgres's clock at the moment the lock was taken."""
    holder = psycopg2.connect(database_url)
    try:
        with holder.cursor() as cursor:
            cursor.execute("LOCK TABLE item IN ACCESS EXCLUSIVE MODE")
            cursor.execute("SELECT clock_timestamp()")
            yield cursor.fetchone()[0]
    finally:
        holder.rollback()  # lets the queries through
        holder.close()


def postgres_backends(database_url, where="TRUE"):
    """{backend pid: when its connection was opened} for the database's other connections
    that match `where`, as Postgres itself reports them (pg_stat_activity)."""
    with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE datname ="
                       f" current_database() AND pid <> pg_backend_pid() AND ({where})")
        found = dict(cursor.fetchall())
    conn.close()
    return found


def waiting_on_item_lock(database_url):
    """postgres_backends() whose query of the item table waits on a lock now."""
    return postgres_backends(database_url,
                             "wait_event_type = 'Lock' AND query ILIKE '%FROM item%'")


def answering(port, process, path, name, seconds=20):
    """The first answer to GET `path` from a server just started as `process` (its output
    piped). If it exits or does not answer within `seconds`, stop it and fail with what it
    printed."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call(port, "GET", path, timeout=1)
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                pytest.fail(f"{name} did not start: {process.communicate()[0].decode()}")
            time.sleep(0.1)


def released_blobs():
    """{path: git blob id} of each file the exercises edit, as released (exercises/released.txt)."""
    rows = [line.split() for line in RELEASED.read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    return {path: blob for blob, path in rows}


def blob_id(path):
    """What `git hash-object path` prints: the id git stores the file's bytes under."""
    data = Path(path).read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def released_project(destination):
    """This working tree copied to `destination`, with the files the exercises edit as
    released, whatever a participant has edited or committed: the tests hold the project as
    shipped. Skips the test where an edited file cannot be recovered (no git history)."""
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(*NOT_COPIED))
    for path, blob in released_blobs().items():
        if blob_id(destination / path) != blob:
            (destination / path).write_bytes(git_blob(path, blob))
    return destination


def git_blob(path, blob):
    found = subprocess.run(["git", "cat-file", "blob", blob], cwd=ROOT, capture_output=True)
    if found.returncode:
        pytest.skip(f"{path} differs from its released version, which only git history holds "
                    "(a downloaded archive has none): this test holds the project as shipped")
    return found.stdout
