"""Check for exercise 1: ten quotes requested at once must wait on the service together."""

import subprocess
import sys
import time
from pathlib import Path

from support import at_once, call, free_port

HERE = Path(__file__).resolve().parent
EDIT = "exercises/01-blocking-call/quote_server.py"


def test_lookups_wait_together():
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "quote_server.py"), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                call(port, "GET", "/peak", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, "quote_server.py did not start"
                time.sleep(0.1)
        ask = lambda: call(port, "GET", "/quote?author=Ada", timeout=30).status  # noqa: E731
        statuses = at_once([ask] * 10)
        assert statuses == [200] * 10
        peak = call(port, "GET", "/peak").json()["peak_waiting"]
        assert peak > 1, (
            f"only {peak} lookup waited on the quote service at a time: a blocking call holds "
            f"the event loop. Edit {EDIT} so the loop can serve others while a lookup waits.")
    finally:
        server.terminate()
        server.wait(timeout=10)
