"""The benchmark's driver (python -m bench, started by ./run_bench.sh): the flags, the plan,
every run measured and audited, results.json written and the report rendered once, at the end.
Standard library only up to the parsing of the flags, so --help works before .venv exists.
"""

import argparse
import json
import os
import random
import signal
import sys
from dataclasses import fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from bench.text import figure
from bench.each_run import said_after, say
from bench.limits import describe_machine, raise_fd_limit, read_limits, somaxconn_note
from bench.placement import DEFAULT, PLACEMENTS, cpus_for, machine_cpus, pin_services, supported
from bench.results import VERSION
from bench.scenarios import MIN_ROUNDS, SCENARIOS, SLICE_S, Scenario
from bench.launch import KINDS, ServerError, Servers

ROOT = Path(__file__).resolve().parent.parent


def defaults_of(field):
    """A flag's default in each scenario, as --help says it, from SCENARIOS: "(default: 8 for
    fair, 2 for capacity, 10 for the others)", the others keeping Scenario's own."""
    usual = next(f.default for f in fields(Scenario) if f.name == field)
    odd = [f"{getattr(s, field):g} for {name}" for name, s in SCENARIOS.items()
           if getattr(s, field) != usual]
    return f"(default: {', '.join([*odd, f'{usual:g} for the others'])})"


def parse_args(argv=None):
    scenarios = "; ".join(f"{name}: {s.plan.__doc__.rstrip('.')}" for name, s in SCENARIOS.items())
    parser = argparse.ArgumentParser(
        prog="./run_bench.sh", description="Benchmark sync_server.py against async_server.py "
        "with wrk, on the same data, pools and machine, and print the comparison.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog=f"Scenarios. {scenarios} Results go to results/<UTC time>/ and results/latest. "
        "Set DATABASE_URL and REDIS_URL to use your own Postgres and Redis.")
    parser.add_argument("--scenario", choices=list(SCENARIOS), default="fair",
                        help="what to run; see below")
    parser.add_argument("--duration", type=int, default=argparse.SUPPRESS, help="seconds per "
                        "measured window; interleaved, of rounds at each point (at least "
                        f"{MIN_ROUNDS}; fair's control 2.5 times as long); capacity's, per "
                        f"slice {defaults_of('duration_s')}")
    parser.add_argument("--connections", default="500,1500",
                        help="comma-separated connection counts (fair and article)")
    parser.add_argument("--repeat", type=int, default=argparse.SUPPRESS,
                        help="run everything N times; report the median and the min-max "
                        + defaults_of("repeat"))
    parser.add_argument("--only", choices=KINDS, help="benchmark one server only")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 2,
                        help="wrk threads, at most one a connection")
    parser.add_argument("--warmup", type=float, default=argparse.SUPPRESS,
                        help="seconds of unmeasured load before each window, after every "
                        f"connection was answered once {defaults_of('warmup_s')}")
    parser.add_argument("--placement", choices=PLACEMENTS,
                        help="the server's and the load's (wrk, Postgres, Redis) CPUs: shared, "
                        "every process on every CPU, as on a laptop; isolated, the server alone "
                        "on the last core; spread, the server on several cores apart from the "
                        "load (Linux; elsewhere shared). Default: fair runs shared, then "
                        f"isolated; the others {DEFAULT}")
    parser.add_argument("--profile", action="store_true",
                        help="a py-spy flame graph per run; its CPU cost makes its req/s not "
                        "comparable with unprofiled runs")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test, not a measurement: 1 s runs (one round), 0.2 s "
                        "warm-up, 2 s at most for the opening, no repeats")
    parser.add_argument("--serve", action="store_true",
                        help="no benchmark: start both servers as it would (--serve-ports), "
                        "print their URLs and the services', wait for Ctrl-C")
    parser.add_argument("--serve-ports", default="8080,8081",
                        help="with --serve: the sync and the async server's ports")
    parser.add_argument("--p99-target-ms", type=float, default=100,
                        help="capacity: the p99 latency a rate must stay under to count")
    parser.add_argument("--results", default=str(ROOT / "results"),
                        help="folder for results/<UTC time>/")
    args = parser.parse_args(argv)
    try:
        args.connections = [int(c) for c in args.connections.split(",")]
    except ValueError:
        parser.error("--connections takes numbers separated by commas, e.g. 500,1500")
    try:
        args.serve_ports = dict(zip(KINDS, (int(p) for p in args.serve_ports.split(",")),
                                    strict=True))
    except ValueError:
        parser.error("--serve-ports takes two ports, sync's then async's, e.g. 8090,8091")
    args.duration = getattr(args, "duration", SCENARIOS[args.scenario].duration_s)
    args.warmup = getattr(args, "warmup", SCENARIOS[args.scenario].warmup_s)
    args.seed = random.randrange(2**32)
    args.repeat = getattr(args, "repeat", SCENARIOS[args.scenario].repeat)
    if args.quick:
        args.duration, args.warmup, args.repeat = 1, 0.2, 1
    return args


class Timing(NamedTuple):
    """What a run needs of the flags; opening_limit_s: a wrk run's wait for every connection
    to be answered once."""
    warmup_s: float
    duration_s: float
    threads: int
    opening_limit_s: float = 30


def main(argv=None):
    args = parse_args(argv)
    if args.serve:  # for the exercises' hands-on parts: bench/serve.py
        from bench.serve import serve
        return serve(say, args.serve_ports)
    machine_cpus()  # every CPU, noted before the benchmark moves itself to the load's
    scenario = SCENARIOS[args.scenario]
    cases = plan_cases(args, scenario)
    out_dir = new_results_dir(Path(args.results))
    machine = describe_machine()
    notes = prepare(args, cases, machine, out_dir)
    machine["limits"] = read_limits()  # after prepare() raised the open-files limit
    try:  # a runner of its own (capacity) adds top-level fields to results.json
        runs, more = (scenario.runner(args, cases, out_dir, run_plan) if scenario.runner
                      else (run_plan(args, cases, out_dir, scenario.interleaved), {}))
    except KeyboardInterrupt:
        say("interrupted: stopping the servers")
        return 130
    results = {"version": VERSION, "scenario": args.scenario, "x_axis": scenario.x_axis,
               "baseline": scenario.baseline, "machine": machine,
               "settings": settings(args, cases, notes), "runs": runs, **more}
    write_results(results, out_dir)
    failed = [run for run in runs if run["audit"]["result"] == "FAILED"]
    if failed:
        say(f"{len(failed)} run(s) failed the audit: the server's counts do not match wrk's")
        return 1
    return 0


def plan_cases(args, scenario):
    """The scenario's cases for these flags: one server only, or --quick's few."""
    cases = [case for case in scenario.plan(args.connections, args.placement)
             if not args.only or case.kind == args.only]
    cases = scenario.quick(cases) if args.quick and scenario.quick else cases
    # where each case runs, resolved once: its own, else --placement, else the default
    return [replace(case, placement=case.placement or args.placement or DEFAULT)
            for case in cases]


def placements_of(cases):
    return list(dict.fromkeys(case.placement for case in cases))


def prepare(args, cases, machine, out_dir):
    """Say what will run and where, raise the open-files limit, check py-spy; the notes on
    the machine's limits, for the results' settings."""
    most = max(case.most_connections for case in cases)
    at_once = max((case.connections + case.idle for case in cases if not case.rate), default=0)
    # an open-loop client opens its connections as requests fall due, not all at once
    notes = {"fd_limit": raise_fd_limit(most),
             "listen_queue": somaxconn_note(at_once, machine["somaxconn"])}
    say(f"scenario {args.scenario}: {len(cases) * args.repeat} runs of {args.duration} s, "
        f"wrk with {args.threads} threads; results in {out_dir}")
    say(f"{machine['cores']} cores ({machine['cpu']}): compare servers within this run, "
        "not across runs")
    for placement in placements_of(cases):
        say(f"  {where_is(placement)}")
    if args.profile:
        from bench.pyspy import can_profile
        why_not = can_profile()
        if why_not:
            say(f"--profile: {why_not}; going on without profiles")
        args.profile = not why_not
    for note in notes.values():
        if note:
            say(note)
    return notes


def run_plan(args, cases, out_dir, interleaved=False):
    """Every run of the plan, each server started once for the runs it serves; the runs as
    results.json keeps them. An interleaved scenario measures each point's servers together
    (bench/interleave.py), the others one run at a time. Stops every server, and gives
    Postgres and Redis back every CPU, however it ends."""
    from bench.interleave import measure_interleaved  # psycopg2, redis and psutil: from .venv
    from bench.measure import measure
    from bench.offered import measure_offered
    timing = Timing(args.warmup, args.duration, args.threads,
                    opening_limit_s=2 if args.quick else 30)
    runs, servers = [], Servers(out_dir, args.profile)
    order = random.Random(args.seed)  # the rounds' order: results.json keeps the seed
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        steps = steps_of(cases, args.repeat, interleaved)
        for step, group in enumerate(steps, 1):
            later = [case for _, case in group] + [case for g in steps[step:] for _, case in g]
            running = [servers.get(case, later, step) for _, case in group]
            repeat, case = group[0]
            say(f"[{step}/{len(steps)}] {' and '.join(c.series for _, c in group)} at "
                f"{case.point}, {args.duration} s", end=" ")
            if interleaved:
                done = measure_interleaved([c for _, c in group], running, timing, out_dir,
                                           f"{step:02d}", order)
            else:
                done = [(measure_offered if case.rate else measure)(case, running[0], timing,
                                                                    out_dir, f"{step:02d}")]
            for run, server in zip(done, running):
                if args.profile:
                    run["profile"] = servers.profile_of(server)
                run["repeat"] = repeat
                runs.append(run)
            said_after("; ".join((f"{run['series']}: " if interleaved else "") + progress(run)
                                 for run in done))
    except ServerError as error:
        raise SystemExit(f"bench: {error}") from None
    finally:
        servers.stop_all()
        if supported():
            pin_services(None)  # Postgres and Redis may be the learner's own: every CPU again
    return runs


def steps_of(cases, repeats, interleaved):
    """The plan's steps, [(repeat, case), ...] each: every case `repeats` times, a point's
    cases in one step where interleaved; within a point, the servers swap order each repeat."""
    points = list(dict.fromkeys(case.point for case in cases))
    steps = []
    for repeat in range(repeats):
        for point in points:
            group = [(repeat, case) for case in cases if case.point == point]
            group = group if repeat % 2 == 0 else group[::-1]
            steps += [group] if interleaved else [[item] for item in group]
    return steps


def settings(args, cases, notes):
    placements = placements_of(cases)
    return {"duration_s": args.duration, "warmup_s": args.warmup, "repeat": args.repeat,
            "threads": args.threads, "connections": args.connections, "only": args.only,
            "quick": args.quick, "placement": args.placement, "seed": args.seed,
            "slice_s": SLICE_S,
            "placements": {p: cpus_for(p) for p in placements}, "profiled": args.profile,
            "fd_limit": notes["fd_limit"] or "enough",
            "listen_queue": notes["listen_queue"] or "enough"}


def write_results(results, out_dir):
    """results.json, summary.md, chart.svg and report.html in out_dir; a summary that fits a
    terminal printed, with report.html's path."""
    from bench.report import terminal_summary, write_report
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print(terminal_summary(results, write_report(results, out_dir)))


def progress(run):
    """The end of a run's progress line: what it served, what was in service, the audit."""
    if run.get("rate"):
        served = (f"{run['rps']:,.0f} of {run['rate']:,.0f} req/s offered answered, "
                  f"{run['in_flight_peak']:,} in flight at most")
    else:
        answered = (run.get("opening") or {}).get("all_answered_s")
        opened = "" if answered is None else f"every connection answered after {answered:.1f} s, "
        served = (f"{opened}{figure(run['rps'], '{:,.0f}')} req/s, "
                  f"{figure(run['peak_in_service'])} in service at most")
    limit = f", limit met: {run['limit_met']}" if run.get("limit_met") else ""
    return (f"{served}, audit {run['audit']['result']}{limit}"
            + ("" if run["valid"] else ", INVALID"))


def where_is(placement):
    """One progress phrase: where a placement puts the server and the load."""
    cpus = cpus_for(placement)
    if not cpus:
        return f"{placement}: no CPU affinity on this OS, the OS places everything"
    if placement == "shared" or cpus["server"] == cpus["load"]:
        return f"{placement}: every process may use CPUs {cpus['server']}"
    return (f"{placement}: the server on CPUs {cpus['server']}, wrk, Postgres and Redis "
            f"on {cpus['load']}")


def new_results_dir(results):
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out_dir = results / stamp
    out_dir.mkdir(parents=True, exist_ok=True)
    latest = results / "latest"
    if latest.is_symlink() or latest.exists():
        latest.unlink()
    latest.symlink_to(stamp)
    return out_dir


if __name__ == "__main__":
    sys.exit(main())
