"""Exercise 1: an aiohttp server that serves one request at a time. Why? Fix it here.

    .venv/bin/python exercises/01-blocking-call/quote_server.py --port 8090
    curl http://127.0.0.1:8090/quote?author=Ada
"""

import argparse

from aiohttp import web

import legacy_quotes


async def quote(request):
    """GET /quote?author=NAME: one quote from the slow legacy service."""
    author = request.query.get("author", "Anonymous")
    text = legacy_quotes.lookup(author)
    return web.json_response({"author": author, "quote": text})


async def peak(request):
    """GET /peak: the most lookups that waited on the quote service at once."""
    return web.json_response({"peak_waiting": legacy_quotes.peak_waiting})


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_get("/quote", quote)
    app.router.add_get("/peak", peak)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None,
                print=lambda _: print(f"quote_server: serving on port {args.port}", flush=True))


if __name__ == "__main__":
    main()
