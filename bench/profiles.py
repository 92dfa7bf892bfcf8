"""py-spy's samples of a server grouped (pyspy.py writes them): the run's shares and the flame
graph's colours. A raw line is "frame;frame;...;leaf COUNT", a frame "function (path)".
"""

from pathlib import Path

RATE = 100  # samples a second: py-spy's default
# A sample counts in the first group with a fragment in its leaf frame: drivers first, so
# redis/_parsers/socket.py is Redis. py-spy sees no frames inside C: time in psycopg2's C code
# shows as our Postgres method calling it, so that counts as the driver.
GROUPS = [
    ("drivers (Postgres, Redis)", ("/psycopg2/", "/asyncpg/", "/redis/", "Postgres.")),
    ("socket reads and writes", ("/socket.py)", "/asyncio/selector_events.py)")),
    ("concurrency: event loop", ("/asyncio/", "/selectors.py)")),
    ("concurrency: threads", ("/threading.py)", "/queue.py)", "/socketserver.py)")),
    ("HTTP layer", ("/aiohttp/", "/http/server.py)", "/email/", "/sync_http.py)",
                    "/async_http.py)", "/multidict/", "/yarl/")),
    ("application (template, validation, handlers)", ("/jinja2/", "/markupsafe/", "/json/",
                                                      "/templates/", "/common.py)",
                                                      "/config.py)", "_server.py)")),
]
OTHER = "other"
NAMES = [name for name, _ in GROUPS] + [OTHER]  # every group, in the shares' order


def stacks(raw_path):
    """[(frames, count)] from py-spy's raw output."""
    found = []
    for line in Path(raw_path).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            found.append((stack.split(";"), int(count)))
    return found


def group_of(frame):
    return next((name for name, parts in GROUPS if any(part in frame for part in parts)), OTHER)


def shares(raw_path):
    """{"samples": N, "shares": {group: percent}}: where the leaf frames were; sums to 100."""
    totals = dict.fromkeys(NAMES, 0)
    for frames, count in stacks(raw_path):
        totals[group_of(frames[-1])] += count
    samples = sum(totals.values())
    return {"samples": samples, "shares": {name: round(100 * n / samples, 1) if samples else 0.0
                                           for name, n in totals.items()}}
