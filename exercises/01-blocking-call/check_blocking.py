"""Check for exercise 1: ten quotes requested at once must wait on the service together. The
check runs the quote service itself and counts the lookups waiting on it at once."""

import os
import socketserver
import subprocess
import sys
import threading
import time
from pathlib import Path

from support import answering, at_once, call, free_port

HERE = Path(__file__).resolve().parent
EDIT = "exercises/01-blocking-call/quote_server.py"


class QuoteService(socketserver.ThreadingTCPServer):
    """A slow quote service: it answers each lookup after 200 ms, and counts how many lookups
    were waiting on it at once."""
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), QuoteHandler)
        self.lock, self.waiting, self.peak = threading.Lock(), 0, 0


class QuoteHandler(socketserver.StreamRequestHandler):
    def handle(self):
        service = self.server
        author = self.rfile.readline().decode().strip()
        with service.lock:
            service.waiting += 1
            service.peak = max(service.peak, service.waiting)
        time.sleep(0.2)  # the service is slow to answer
        with service.lock:
            service.waiting -= 1
        self.wfile.write(f"{author} said something wise.\n".encode())


def test_lookups_wait_together():
    service = QuoteService()
    threading.Thread(target=service.serve_forever, daemon=True).start()
    port = free_port()
    env = {**os.environ, "QUOTE_SERVICE": f"127.0.0.1:{service.server_address[1]}"}
    server = subprocess.Popen([sys.executable, str(HERE / "quote_server.py"), "--port", str(port)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        answering(port, server, "/peak", "quote_server.py")
        def ask():
            return call(port, "GET", "/quote?author=Ada", timeout=30).status
        statuses = at_once([ask] * 10)
        assert statuses == [200] * 10
        assert service.peak > 1, (
            f"the quote service saw only {service.peak} lookup waiting at a time: a blocking "
            f"call holds the event loop. Edit {EDIT} so the loop can serve others while a "
            "lookup waits.")
        reported = call(port, "GET", "/peak").json()["peak_waiting"]
        assert reported == service.peak, (
            f"/peak says {reported}; the quote service saw {service.peak}: edit {EDIT}")
    finally:
        server.terminate()
        server.wait(timeout=10)
        service.shutdown()
        service.server_close()
