"""Read one wrk run's output: wrk's own text report plus the WRK_JSON line of bench/wrk.lua.

wrk counts every response it completed as a request, whatever its status; "Non-2xx or 3xx"
counts statuses of 400 and above; a response slower than --timeout counts as a timeout and is
left out of the latency percentiles. Requests still unanswered when wrk stops count nowhere.
"""

import json
import re


class WrkOutputError(ValueError):
    """The output is not what bench/wrk.lua makes wrk print."""


def parse_wrk(output):
    """Return the run's numbers as a dict; raise WrkOutputError if the report is incomplete."""
    line = next((line for line in output.splitlines() if line.startswith("WRK_JSON ")), None)
    if line is None:
        raise WrkOutputError("no WRK_JSON line: was wrk run with -s bench/wrk.lua?")
    raw = json.loads(line[len("WRK_JSON "):])
    check_against_text(raw, output)
    seconds = raw["duration_us"] / 1e6
    timed = raw["requests"] - raw["timeouts"]  # responses inside the latency histogram
    socket_errors = {kind: raw[kind + "_errors"] for kind in ("connect", "read", "write")}
    return {
        "requests": raw["requests"],
        "seconds": round(seconds, 3),
        "rps": round(raw["requests"] / seconds, 1) if seconds else 0.0,
        "ok": raw["requests"] - raw["status_errors"],
        "non_2xx": raw["status_errors"],
        "timeouts": raw["timeouts"],
        "socket_errors": socket_errors,
        "latency_mean_ms": ms(raw["latency_mean_us"]) if timed else None,
        "p50_ms": ms(raw["p50_us"]) if timed else None,
        "p90_ms": ms(raw["p90_us"]) if timed else None,
        "p99_ms": ms(raw["p99_us"]) if timed else None,
    }


def check_against_text(raw, output):
    """wrk's text report and our Lua summary must tell the same story."""
    found = re.search(r"^\s*(\d+) requests in ", output, re.M)
    if not found or int(found.group(1)) != raw["requests"]:
        raise WrkOutputError("the request count in wrk's report does not match WRK_JSON")
    found = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                      output)
    text_errors = tuple(map(int, found.groups())) if found else (0, 0, 0, 0)
    json_errors = (raw["connect_errors"], raw["read_errors"], raw["write_errors"],
                   raw["timeouts"])
    if text_errors != json_errors:
        raise WrkOutputError(f"socket errors differ: report {text_errors}, "
                             f"WRK_JSON {json_errors}")
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if (int(found.group(1)) if found else 0) != raw["status_errors"]:
        raise WrkOutputError("the Non-2xx count in wrk's report does not match WRK_JSON")


def ms(microseconds):
    return round(microseconds / 1000, 2)
