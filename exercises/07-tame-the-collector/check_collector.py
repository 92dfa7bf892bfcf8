"""Check for exercise 7: with a thousand requests waiting, the collector walks less than half
of what it walked as shipped, and still runs. The server counts what its collector did
(gc.callbacks, GET /gc); the check runs it as shipped and as you left it, under the same
load, and compares the counts. Nothing is timed."""

import asyncio
import subprocess
import sys
from pathlib import Path

from support import answering, call, free_port

HERE = Path(__file__).resolve().parent
EDIT = "exercises/07-tame-the-collector/waiting_server.py"
WAITING, WAIT_S = 1000, 1.5  # requests held waiting at once, and for how long


async def one_wait(port):
    """GET /wait on a connection of its own; the status, or 0 if there was no answer."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return 0
    try:
        writer.write(f"GET /wait?s={WAIT_S} HTTP/1.1\r\nHost: check\r\n"
                     "Connection: close\r\n\r\n".encode())
        status_line = await asyncio.wait_for(reader.readline(), WAIT_S + 30)
        return int(status_line.split()[1])
    except (OSError, ValueError, IndexError, asyncio.TimeoutError):
        return 0
    finally:
        writer.close()


async def all_waiting(port):
    return await asyncio.gather(*(one_wait(port) for _ in range(WAITING)))


def under_load(*flags):
    """Start the server, hold WAITING requests at once, and return /gc before and after
    with the statuses the requests got."""
    port = free_port()
    server = subprocess.Popen([sys.executable, str(HERE / "waiting_server.py"), "--port",
                               str(port), *flags], stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    try:
        before = answering(port, server, "/gc", "waiting_server.py").json()
        statuses = asyncio.run(all_waiting(port))
        after = call(port, "GET", "/gc").json()
    finally:
        server.terminate()
        server.wait(timeout=10)
    return before, after, statuses


def by_generation(collections):
    """/gc's [109, 9, 1] in words: the collections of each generation, youngest first; only
    the old generation's are full collections, walking every object the collector tracks."""
    young, middle, old = collections
    return f"collections by generation: {young:,} young, {middle:,} middle, {old:,} old (full)"


def test_the_collector_walks_less_and_still_runs():
    _, shipped, _ = under_load("--as-shipped")
    before, after, statuses = under_load()
    assert statuses == [200] * WAITING, f"only {statuses.count(200)} requests answered 200"
    assert shipped["walked_by_full"] > 0, "as shipped, no full collection came: load too light"
    young = after["collections"][0] - before["collections"][0]
    assert after["enabled"] and young > 0, (
        "the collector did not run at all while the requests waited: turned off, reference "
        "cycles are never freed and memory grows without end. Tame it in tame_collector(), "
        f"in {EDIT}, without turning it off.")
    assert after["frozen"] <= before["frozen"], (
        f"{after['frozen'] - before['frozen']:,} more objects were frozen while requests "
        "came and went: what a request leaves behind is then never freed. Freeze, if you "
        "do, once, in tame_collector().")
    walked = after["walked_by_full"] - before["walked_by_full"]
    print(f"as shipped: {by_generation(shipped['collections'])}, full ones walked "
          f"{shipped['walked_by_full']:,}\nyours: {by_generation(after['collections'])}, "
          f"full ones walked {walked:,}")
    assert walked * 2 <= shipped["walked_by_full"], (
        f"full collections walked {walked:,} objects, as shipped {shipped['walked_by_full']:,}: "
        f"at most half is the goal. Edit tame_collector() in {EDIT}.")
