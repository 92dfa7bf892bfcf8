"""Helpers the tests and the exercise checks share: real servers as subprocesses, plain HTTP,
the data reset."""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

from reset_db import count_rows, counter_value, reset  # noqa: E402,F401
from services import free_port  # noqa: E402

KINDS = ["sync", "async"]


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


class Server:
    """sync_server.py or async_server.py in a subprocess on a free port."""

    def __init__(self, kind, urls, *args, log_dir):
        self.kind, self.args = kind, args
        self.port = free_port()
        self.env = {**os.environ, **urls}
        self.log_path = Path(log_dir) / f"{kind}-{self.port}.log"

    def start(self):
        self.log_file = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, f"{self.kind}_server.py", "--port", str(self.port), *self.args],
            cwd=ROOT, env=self.env, stdout=self.log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "serving on" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.kind} server did not start:\n{self.log()}")
            time.sleep(0.05)
        return self

    def stop(self, stop_signal=signal.SIGTERM):
        """SIGTERM as a process manager sends it (or SIGINT, Ctrl-C); returns the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(stop_signal)
        try:
            return self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
        finally:
            self.log_file.close()

    def log(self):
        return self.log_path.read_text(errors="replace")

    def stats(self):
        return call(self.port, "GET", "/stats").json()


@pytest.fixture(scope="session")
def urls():
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not os.environ.get(name)]
    if missing:
        pytest.exit(f"{' and '.join(missing)} not set: run the tests with ./run_tests.sh", 2)
    return {"DATABASE_URL": os.environ["DATABASE_URL"], "REDIS_URL": os.environ["REDIS_URL"]}


@pytest.fixture
def fresh_data(urls):
    """schema.sql applied again and the counter gone: 20 rows, counter 0."""
    reset(urls["DATABASE_URL"], urls["REDIS_URL"])


@pytest.fixture
def start_server(urls, tmp_path):
    """start_server(kind, *flags) -> a running Server; all are stopped after the test."""
    started = []

    def start(kind, *args, service_urls=None):
        server = Server(kind, service_urls or urls, *args, log_dir=tmp_path).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def both_servers(urls, tmp_path_factory):
    """One sync and one async server for a module's read-mostly tests."""
    log_dir = tmp_path_factory.mktemp("logs")
    servers = {kind: Server(kind, urls, log_dir=log_dir).start() for kind in KINDS}
    yield servers
    for server in servers.values():
        server.stop()


def stored_text(database_url, item_id):
    with psycopg2.connect(database_url) as conn, conn.cursor() as cursor:
        cursor.execute("SELECT text FROM item WHERE id = %s", (item_id,))
        row = cursor.fetchone()
    conn.close()
    return row and row[0]
