"""--scenario capacity: each server's latency at each offered rate, its knee, and the highest
rate it sustains with its p99 under --p99-target-ms.

First each server's saturation, by a short wrk run (one run finds it, at little CPU; the
open-loop client is Python and costs more, so its knee can come before wrk's figure: the grid
goes to 110% of it). Then, both servers running throughout, --repeat rounds in which each gets
a slice at every rate of the grid, in an order drawn by random.Random(seed), so the machine's
drift falls on both alike. A point's slices pool into one run (pooled_report): its intervals
take requests as independent; near a knee latencies come in bursts, so there they are
narrower than the truth, and the rounds' spread (run["offered"]["slices"]) shows it.
"""

import random
import statistics
from argparse import Namespace
from contextlib import closing
from dataclasses import replace

from bench.each_run import (Count, audit, dot, place_load, ran_with, record, reset_data,
                            said_after, say, start_openloop)
from bench.launch import Server
from bench.offered import client_figures, combined, limit_met, open_loop
from bench.placement import pin_services, supported
from bench.text import label_of

# of the higher saturation, finer where knees come: a default run of about 6 minutes here
# (3 rounds of 2 s slices, each about 3.7 s with its warm-up, drain and reset)
GRID = (0.1, 0.3, 0.5, 0.65, 0.8, 0.95, 1.1)
QUICK_GRID = (0.25, 1.0)
SLICE_WARMUP_S = 0.5  # at most: --quick's --warmup is shorter
MIN_SAMPLES = 1000  # a p99 from fewer has its upper bound among its last few values: marked
BODY = '{"text": "capacity"}'
# the open-loop client's figures kept for each slice (openloop.py's docstring)
SLICE_KEYS = ("sent", "ok", "timeouts", "achieved_rate", "p99_ms", "client_cpu_s",
              "send_lag_ms_p99", "client_behind", "peak_in_flight")
POOLED = ("sent", "ok", "ok_all", "non_2xx", "timeouts", "timeouts_connecting",
          "answered_in_window", "client_cpu_s", "duration_s")  # added up over the slices


def timeout_for(target_ms):
    """A request's deadline: far past the target (a timeout ranks after every answer, so
    only the percentiles past it are lost), short enough that an overloaded slice drains
    soon: 1 s for the default 100 ms."""
    return max(1.0, 5 * target_ms / 1000)


def grid_rates(saturation, shares):
    """The rates offered: shares of the saturation, to 10 requests a second, rising."""
    return sorted({max(10, int(round(share * saturation, -1))) for share in shares})


def capacity_at(points, target_ms):
    """points: [(rate, p99_ms, its 95% low, high)] in rising rate, None for a figure past
    the timeout or not measured (as high as can be). Returns {rate, low, high}:
    rate: the highest rate whose p99 is under the target, as is every lower rate's (None:
    not even the lowest rate's); the true capacity lies between low, the highest rate whose
    p99's upper bound (and every lower rate's) is under the target (None: none is surely),
    and high, the first rate whose p99's lower bound is not (None: none offered is surely
    over). The grid's step and the quantile's uncertainty both widen it."""
    def over(value):
        return value is None or value >= target_ms

    def last_before(key):
        kept = None
        for point in points:
            if over(key(point)):
                break
            kept = point[0]
        return kept
    return {"rate": last_before(lambda p: p[1]), "low": last_before(lambda p: p[3]),
            "high": next((p[0] for p in points if over(p[2])), None)}


def ratio_of(other, base):
    """other's capacity over base's, and the widest ratio their intervals allow (not a 95%
    interval of its own: the grid's step is most of it); None where it is unbounded."""
    def divided(a, b):
        return round(a / b, 3) if a and b else None
    return {"value": divided(other["rate"], base["rate"]),
            "low": divided(other["low"], base["high"]),
            "high": divided(other["high"], base["low"])}


def pooled_report(reports):
    """The open-loop reports of a point's slices (with --raw's latencies_ms) as one
    (offered.combined), with the rate achieved over every window and each slice's figures."""
    slices = [{key: report[key] for key in SLICE_KEYS} for report in reports]
    pooled = combined(reports, POOLED)
    return {**pooled, "achieved_rate": round(pooled["answered_in_window"]
                                             / pooled["duration_s"], 2),
            "peak_in_flight": max(report["peak_in_flight"] for report in reports),
            "slices": slices}


def pooled_figures(figures):
    """The sampler's figures of each slice as one: peaks the highest, means their mean, CPU
    and counts added up, per request over every slice's requests; None if a slice's was."""
    pooled = {}
    for key in figures[0]:
        values = [figure[key] for figure in figures]
        if None in values or key.endswith("_per_request"):
            pooled[key] = None
        elif key.startswith(("peak_", "longest_")):
            pooled[key] = max(values)
        elif key.startswith("mean_"):
            pooled[key] = round(statistics.fmean(values), 1)
        elif key == "server_cpus_seen":
            pooled[key] = sorted(set().union(*values))
        else:
            pooled[key] = round(sum(values), 3)
    served = pooled["served_in_window"]
    switches = (None if pooled["server_ctx_switches_voluntary"] is None else
                pooled["server_ctx_switches_voluntary"]
                + pooled["server_ctx_switches_involuntary"])
    for key, total, scale in (("server_cpu_ms_per_request", pooled["server_cpu_s"], 1000),
                              ("server_switches_per_request", switches, 1),
                              ("server_migrations_per_request", pooled["server_migrations"], 1)):
        pooled[key] = round(scale * total / served, 3) if total is not None and served else None
    return pooled


def offer_slice(server, case, timing, load_cpus, raw_path):
    """One slice: the data reset (GET / renders every row: a POST slice's would slow the next
    GET's), an open-loop client at case.rate, the server sampled in its window, then let go
    idle. Returns the client's report with the sampler's figures, recovered_s and an audit."""
    reset_data()

    def start_client(log):
        yield start_openloop(server.port, case.rate, timing.duration_s, timing.timeout_s,
                             timing.warmup_s, load_cpus, log, raw=True,
                             post=BODY if case.method == "POST" else None)
    with closing(Count(case.method)) as count:  # open_loop returns with the server idle
        window = open_loop(server, raw_path, start_client, timing.warmup_s, timing.duration_s,
                           timing.timeout_s, shown=False)
        counted = count.now()
    report = window["reports"][0]
    # the warm-up's requests and those the client gave up on may have been served too
    extra = round(case.rate * timing.warmup_s) + report["sent"] - report["ok_all"]
    verdict = audit(case.method, counted, extra, wrk_ok=report["ok_all"])
    return {**report, "figures": window["sampler"].figures(),
            "recovered_s": window["recovered_s"], "audit": verdict}


def pooled_run(case, server, slices, raw, placed):
    """A point's slices as one run of results.json (results.py: EVERY_RUN and OPEN_LOOP)."""
    audits = [s["audit"] for s in slices]
    recovered = [s["recovered_s"] for s in slices]
    report = pooled_report(slices)
    return record(case, server, ran_with(case, server), placed,
                  pooled_figures([s["figures"] for s in slices]), raw, None,
                  report["duration_s"], repeat=0,
                  **client_figures(report) | {"latency_mean_ms": report["mean_answered_ms"]},
                  wrk_cpu_s=report["client_cpu_s"], offered=report,
                  in_flight_peak=report["peak_in_flight"], limit_met=limit_met("", report),
                  recovered_s=None if None in recovered else max(recovered),
                  **dict.fromkeys(("waiting_upstream_peak", "held", "kernel_stack_kb",
                                   "limit_lines", "thread_cap_how", "threads_refused")),
                  audit={**{key: sum(a[key] for a in audits)
                            for key in ("counted", "wrk_ok", "allowed_extra")},
                         "what": audits[0]["what"],
                         "result": "ok" if all(a["result"] == "ok" for a in audits)
                         else "FAILED"},
                  valid=not report["errors"].get("client_fd_limit"))


def measure_capacity(args, cases, out_dir, run_plan):
    """The saturation runs (`cases`, by the driver's run_plan), then the grid's: (runs,
    {"capacity": summary})."""
    saturation = run_plan(Namespace(**{**vars(args), "repeat": 1}), cases, out_dir)
    flat_out = {}
    for run in saturation:
        flat_out.setdefault(run["method"], {})[run["kind"]] = run["rps"]
    shares = QUICK_GRID if args.quick else GRID
    grid = {method: grid_rates(max(by_kind.values()), shares)
            for method, by_kind in flat_out.items()}
    seed = random.SystemRandom().randrange(2**32)
    timing = Namespace(warmup_s=min(SLICE_WARMUP_S, args.warmup), duration_s=args.duration,
                       timeout_s=timeout_for(args.p99_target_ms))
    kinds = list(dict.fromkeys(case.kind for case in cases))
    runs = offer_grid(args, cases, grid, kinds, seed, timing, out_dir)
    summary = {"target_ms": args.p99_target_ms, "seed": seed, "rounds": args.repeat,
               "slice_warmup_s": timing.warmup_s, "slice_duration_s": timing.duration_s,
               "timeout_s": timing.timeout_s, "min_samples": MIN_SAMPLES,
               "methods": {method: summarize(runs, method, flat_out[method], grid[method],
                                             args.p99_target_ms)
                           for method in grid}}
    return saturation + runs, {"capacity": summary}


def summarize(runs, method, flat_out, rates, target_ms):
    """One method's saturation, rates, each server's capacity at the target, the ratio of
    the others' to sync's, and the lowest rate at which the client fell behind (None)."""
    capacities = {}
    for run in runs:
        if run["method"] == method:
            capacities.setdefault(run["kind"], []).append(
                (run["rate"], run["p99_ms"], *run["offered"]["p99_interval_ms"]))
    capacities = {kind: capacity_at(sorted(points), target_ms)
                  for kind, points in capacities.items()}
    behind = [run["rate"] for run in runs
              if run["method"] == method and run["offered"]["client_behind"]]
    return {"saturation": flat_out, "rates": rates, "capacity": capacities,
            "ratio": {kind: ratio_of(capacity, capacities["sync"])
                      for kind, capacity in capacities.items()
                      if kind != "sync" and "sync" in capacities},
            "client_behind_from": min(behind, default=None)}


def offer_grid(args, cases, grid, kinds, seed, timing, out_dir):
    """Every rate of the grid to each server, in rounds; the pooled runs, by method and rate."""
    placed = place_load(cases[0].placement)
    servers, slices, rng = {}, {}, random.Random(seed)
    say(f"then {len(kinds) * sum(map(len, grid.values())) * args.repeat} open-loop slices "
        f"in {args.repeat} round(s), servers in turn (random.Random({seed}))")
    try:
        for kind in kinds:  # started once, kept running through every slice
            servers[kind] = Server(kind, log_dir=out_dir, cpus=placed.cpus["server"]).start()
        for round_ in range(args.repeat):
            for method, rates in grid.items():
                say(f"round {round_ + 1}/{args.repeat}: {label_of(method)} at {len(rates)} rates, "
                    f"{rates[0]:,}/s to {rates[-1]:,}/s, {args.duration} s a slice", end=" ")
                for rate in rates:
                    for kind in rng.sample(kinds, len(kinds)):
                        case = replace(cases[0], point=f"{label_of(method)} {rate:,}/s", x=rate,
                                       series=kind, kind=kind, method=method, rate=rate,
                                       connections=0, timeout_s=timing.timeout_s)
                        raw = f"capacity-{kind}-{method.lower()}-r{rate}.txt"
                        slices.setdefault(case, (raw, []))[1].append(
                            offer_slice(servers[kind], case, timing, placed.cpus["load"],
                                        out_dir / raw))
                        dot()
                said_after(f"p99 at {rates[-1]:,}/s: " + ", ".join(
                    f"{case.kind} " + ("past the timeout" if pooled[-1]["p99_ms"] is None
                                       else f"{pooled[-1]['p99_ms']:,.1f} ms")
                    for case, (_, pooled) in slices.items()
                    if (case.method, case.rate) == (method, rates[-1])))
        ordered = sorted(slices, key=lambda c: (c.method != "GET", c.rate, kinds.index(c.kind)))
        return [pooled_run(case, servers[case.kind], *slices[case][::-1], placed)
                for case in ordered]
    finally:
        for server in servers.values():
            server.stop()
        if supported():
            pin_services(None)  # Postgres and Redis may be the learner's own: every CPU again
