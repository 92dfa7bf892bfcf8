"""Exercise 7: a server whose requests wait a long time, as long polls do, on aiohttp.

    .venv/bin/python exercises/07-tame-the-collector/waiting_server.py --port 8090

GET /wait?s=5 answers after 5 seconds; every waiting request holds some state, as a real
one does (its request, a few dicts, a callback that refers back to it: a reference cycle).
GET /gc reports what Python's garbage collector did since start-up, counted by gc.callbacks:
collections of each generation, and the objects each full collection had to walk.

Edit tame_collector(), below; the rest is the same server you measure before and after.
"""

import argparse
import asyncio
import gc
import json

from aiohttp import web

def tame_collector():
    """Called once, after start-up and before the first request."""


class Subscription:
    """What one waiting request holds until it is answered. Its callback is a bound method,
    so it refers to itself: only the garbage collector frees it, not reference counting."""

    def __init__(self, request):
        self.request = request
        self.fields = [{"n": n, "name": f"field {n}"} for n in range(20)]
        self.on_answer = self.answer

    def answer(self):
        return web.json_response({"waited": True, "fields": len(self.fields)})


async def wait(request):
    """GET /wait?s=N: answer after N seconds."""
    subscription = Subscription(request)
    await asyncio.sleep(float(request.query.get("s", "1")))  # yields to the event loop
    return subscription.on_answer()


class CollectorCounts:
    """gc.callbacks: collections by generation, and the objects the collector tracked when
    each full collection started (what it had to walk)."""

    def __init__(self):
        self.collections = [0, 0, 0]
        self.walked_by_full = 0
        gc.callbacks.append(self.count)

    def count(self, phase, info):
        if phase != "start":
            return
        self.collections[info["generation"]] += 1
        if info["generation"] == 2:
            self.walked_by_full += len(gc.get_objects())  # frozen objects are not listed

    def report(self):
        return {"collections": self.collections, "walked_by_full": self.walked_by_full,
                "enabled": gc.isenabled(), "frozen": gc.get_freeze_count(),
                "thresholds": gc.get_threshold()}


async def show_gc(request):
    """GET /gc: what the collector did since start-up."""
    return web.Response(text=json.dumps(request.app[COUNTS].report()),
                        content_type="application/json")


COUNTS = web.AppKey("counts", CollectorCounts)


async def started(app):
    tame_collector()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090, help="(default: %(default)s)")
    parser.add_argument("--as-shipped", action="store_true",
                        help="skip tame_collector(): the collector as Python sets it")
    args = parser.parse_args()
    app = web.Application()
    app[COUNTS] = CollectorCounts()
    app.router.add_get("/wait", wait)
    app.router.add_get("/gc", show_gc)
    if not args.as_shipped:
        app.on_startup.append(started)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None,
                print=lambda message: print(f"waiting_server: {message}", flush=True))


if __name__ == "__main__":
    main()
