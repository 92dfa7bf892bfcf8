"""The plain reading of a results.json ("What it says"): which server served more, where and
by how much, the cause in one sentence, then what went wrong. The tables hold the rest; a
--quick run gives no verdict."""

import math

from bench.report.capacity_report import capacity_reading
from bench.report.cells import (LITTLE, LITTLE_OFF, NOISY_SHARE, audit_cell, compared,
                                cpu_per_request, groups, littles_law_off, percentile_cell,
                                summarize, unaccepted)
from bench.text import figure

# what --quick is, said in the same words wherever a quick run shows (run_bench.sh too)
SMOKE_TEST = "smoke test: checks that everything runs; its figures are not a measurement"


def reading(results):
    """The lines of "What it says", each a "- " item but the limits' sentence."""
    if results["settings"].get("quick"):
        return "\n".join(smoke_test(results) + warnings(results))
    closed = [row for row in summarize(results) if not row["run"].get("rate")]
    lines = (capacity_reading(results) if results.get("capacity") else offered_headline(results)
             ) + closed_headline(results, closed) + alone(results)
    lines += cause(results, closed) + stalls(results) + warnings(results)
    return "\n".join(lines)


def smoke_test(results):
    """Whether everything ran, and how to measure; no ratio, no cause."""
    runs = results["runs"]
    passed = sum(run["audit"]["result"] == "ok" and run["valid"] for run in runs)
    return [f"- --quick is a {SMOKE_TEST}. {passed} of {len(runs)} runs served requests "
            "that their audit matched. For a measurement, run it again without --quick "
            "(--repeat 5 shows how far runs vary)."]


def alone(results):
    """Where Ratio compares nothing (--only, or one series): why, and how to compare."""
    if compared(results):
        return []
    series = list(dict.fromkeys(run["series"] for run in results["runs"]))
    only = results["settings"].get("only")
    base = results["baseline"]
    why = "nothing else ran beside it" if base in series else f"{base} did not run"
    return [f"- Only {' and '.join(series)} ran{f' (--only {only})' if only else ''}: no "
            f"Ratio, as {why}; its figures are in the tables. Run without --only to compare "
            "the servers."]


def closed_headline(results, rows):
    """Per placement and series: its ratio to the baseline at each point, with its range."""
    base = results["baseline"]
    several = len({row["run"].get("placement") for row in rows}) > 1
    lines = {}
    for row in rows:
        if row["series"] == base or row["ratio"] is None:
            continue
        where = row["run"].get("placement") if several else None
        point = row["point"].removesuffix(f", {where}")
        ratios = [] if row["interval"] else repeat_ratios(results, row)
        said = (f"{row['ratio']:.2f}x{within(row['interval'])} at {point}"
                + (f" ({spread(ratios)})" if ratios else ""))
        lines.setdefault((where, row["series"]), []).append(said)
    return [f"- {where + ': ' if where else ''}{series} / {base} req/s: {', '.join(said)}."
            for (where, series), said in lines.items()]


def within(interval):
    """A ratio's 95% interval over interleaved rounds, and whether it tells the two apart."""
    if not interval or interval[0] is None:
        return ""
    low, high, rounds = interval
    apart = "cannot tell them apart" if low <= 1 <= high else "apart"
    return f" ({low:.2f}–{high:.2f}, {rounds} rounds: {apart})"


def repeat_ratios(results, row):
    """This row's ratios to the baseline, repeat by repeat (two or more)."""
    runs = groups(results["runs"])[row["point"]]
    base = {run.get("repeat"): run["rps"] for run in runs.get(results["baseline"], [])}
    ratios = [run["rps"] / base[run.get("repeat")] for run in runs[row["series"]]
              if base.get(run.get("repeat"))]
    return ratios if len(ratios) > 1 else []


def spread(ratios):
    """The repeats' range of ratios and what it shows."""
    if min(ratios) <= 1 <= max(ratios):
        verdict = "holds 1.00x: no difference either way"
    elif len(ratios) < 5:
        verdict = f"one side, but {len(ratios)} repeats are few"
    else:
        verdict = f"{'above' if min(ratios) > 1 else 'below'} 1.00x in every one"
    return f"repeats {min(ratios):.2f}x–{max(ratios):.2f}x, {verdict}"


def cause(results, rows):
    """Where the ratio is furthest from 1.00x (CPU measured): what each server paid per request
    there, and the baseline for the same request in the other placements."""
    name = results["baseline"]
    base_of = {r["point"]: r["run"] for r in rows if r["series"] == name}
    far = [row for row in rows if row["ratio"] and row["series"] != name
           and None not in (row["run"].get("server_cpu_ms_per_request"),
                            base_of[row["point"]].get("server_cpu_ms_per_request"))]
    if not far:
        return []
    row = max(far, key=lambda row: abs(math.log(row["ratio"])))
    base = base_of[row["point"]]
    return [f"- Why, at {row['point']}: {name} paid {paid(base)} per request, {row['series']} "
            f"{paid(row['run'])}" + "".join(
                f"; {name} on {r['run']['placement']}, {paid(r['run'])}" for r in rows
                if r["series"] == name and r["point"] != row["point"]
                and same_request(r["run"], base)) + "."]


def same_request(run, other):
    """The same request and server configuration placed elsewhere: not the next point of a
    scenario that varies a knob (cpu 2 ms is not cpu 0 ms on shared)."""
    return (run.get("placement") != other.get("placement")
            and all(run.get(key) == other.get(key)
                    for key in ("method", "connections", "idle", "flags")))


def paid(run):
    return (f"{cpu_per_request(run)} of CPU, "
            f"{figure(run.get('server_switches_per_request'), '{:.1f}')} context switches and "
            f"{figure(run.get('server_migrations_per_request'), '{:.2f}')} migrations")


def stalls(results):
    """Interleaved slices served at under half the median rate (a long collection, a convoy of
    threads woken at once, the machine)."""
    lines = []
    for run in results["runs"]:
        rates = sorted(served / seconds for served, seconds in run.get("slices", []))
        slow = [(served, seconds) for served, seconds in run.get("slices", [])
                if served / seconds < rates[len(rates) // 2] / 2]
        if slow:
            served, seconds = max(slow, key=lambda s: s[1] / max(s[0], 1))
            lines.append(f"{run['series']} at {run['point']} in {len(slow)} of "
                         f"{len(rates)} (the slowest: {served:,} requests in {seconds:.1f} s)")
    return [f"- Stalls, slices at under half the server's median rate: {'; '.join(lines)}. "
            "The ratio, a median, sets them aside; Req/s counts them."] if lines else []


def offered_headline(results):
    """Open-loop runs: the machine's limits, then per series where it answered every request
    in time, and the first limit it met."""
    rows = [row for row in summarize(results) if row["run"].get("rate")]
    if not rows:
        return []
    cap = max(row["run"].get("thread_cap") or 0 for row in rows)
    lines = [f"Limits: {limits_sentence(results['machine'].get('limits'), cap)}"]
    for series in dict.fromkeys(row["series"] for row in rows):
        points = [(row["point"], row["run"]) for row in rows if row["series"] == series]
        kept = [point for point, run in points if not run["timeouts"] and not run.get("limit_met")]
        failed = [(point, run) for point, run in points if point not in kept]
        kept = ", ".join(point.split(", ")[0] for point in kept) or "no point"  # "20 s wait"
        line = f"- {series}: every request answered in time at {kept}"
        if failed:
            point, run = failed[0]
            line += (f"; at {point}, {run['timeouts']:,} timeouts, p99 "
                     f"{percentile_cell(run, 'p99_ms')}, limit met: "
                     f"{run.get('limit_met') or 'none'}")
        lines.append(line + ".")
    return lines


def thread_ceiling(limits):
    """(the most connections a thread per connection could hold, the limit that says so), or
    (None, None). Each takes a thread and a descriptor; the machine-wide ones are upper bounds."""
    ceilings = {"RLIMIT_NOFILE (soft)": limits["nofile_soft"],
                "RLIMIT_NPROC": None if limits["nproc_exempt"] else limits["nproc"],
                "vm.max_map_count / 2": limits["max_map_count"] and limits["max_map_count"] // 2,
                "kernel.pid_max": limits["pid_max"],
                "kernel.threads-max": limits["threads_max"],
                "kern.num_taskthreads (per process)": limits.get("task_threads"),
                "pids.max (this cgroup, as systemd's TasksMax)": limits.get("pids_max")}
    known = {name: value for name, value in ceilings.items() if value is not None}
    if not known:
        return None, None
    name = min(known, key=known.get)
    return known[name], name


def limits_sentence(limits, thread_cap=0):
    """What stops each model first here: threads for a thread per connection, open files for
    both. thread_cap: the cap the run set on each server's threads (the laptop scenario)."""
    if not limits:
        return "none could be read on this system."
    ceiling, name = thread_ceiling({**limits, "nofile_soft": None})  # threads alone
    if thread_cap and (ceiling is None or thread_cap < ceiling):
        ceiling, name = thread_cap, "the cap this run set on each server's threads"
    shared = ", machine-wide: an upper bound" if name and name.startswith("kernel.") else ""
    threads = (f"the OS would refuse the thread-per-connection server a new thread at about "
               f"{ceiling:,} ({name}{shared})" if ceiling
               else "no limit on threads could be read here")
    files = limits.get("nofile_soft")
    first = "" if not ceiling or not files else (
        " So the first limit here is open files, for both servers alike." if files <= ceiling
        else " So the first limit here is threads, for the thread-per-connection server.")
    return (f"{threads}; each process, either server and the client alike, may hold "
            f"{figure(files, '{:,}')} open files, one per connection.{first}")


def warnings(results):
    """A line for each run that measured less than it should, then LATENCY and NOISY."""
    lines = []
    for run in results["runs"]:
        what = f"{run['series']} at {run['point']}"
        if unaccepted(run):
            lines.append(f"- PARTIAL: {what} accepted {run['peak_connections']:,} of "
                         f"{run['connections']:,} connections; the rest waited unserved.")
        if not run["valid"]:
            lines.append(f"- INVALID: {what} had connect errors: fewer connections than asked.")
        if run["non_2xx"]:
            lines.append(f"- {what}: {run['non_2xx']:,} error answers (see its server log).")
        if run["audit"]["result"] != "ok":
            lines.append(f"- Audit {run['audit']['result']}: {what}: {audit_cell(run)}.")
    return lines + littles_law_line(results) + noisy_line(results)


def littles_law_line(results):
    """One line for the runs whose probe breaks Little's law: the three furthest off."""
    off = sorted(((run, littles_law_off(run)) for run in results["runs"]
                  if littles_law_off(run) is not None), key=lambda pair: -abs(pair[1]))
    if not off:
        return []
    named = "; ".join(f"{run['series']} at {run['point']}, {by:+d}%" for run, by in off[:3])
    more = f"; and {len(off) - 3} more" if len(off) > 3 else ""
    return [f"- LATENCY {LITTLE}: in {len(off)} of {len(results['runs'])} runs, req/s × the "
            f"probe's mean latency is more than {LITTLE_OFF}% off the requests the server had "
            f"in service ({named}{more}): the probe's requests may not have waited as wrk's "
            "did; read their p50 and p99 with care."]


def noisy_line(results):
    """One line for the runs other programs disturbed: the worst, and what to do."""
    def sampled(run):  # how long the machine's CPU was read: the run's window, or its rounds
        return run.get("sampled_s", run.get("duration_s", 0))
    runs = [run for run in results["runs"]
            if (run.get("other_cpu_s") or 0) > NOISY_SHARE * sampled(run)]
    if not runs:
        return []
    worst = max(runs, key=lambda run: run["other_cpu_s"] / sampled(run))
    what = f"{worst['series']} at {worst['point']}"
    where = (f"during {what}" if len(runs) == 1 else
             f"in {len(runs)} of {len(results['runs'])} runs, the most during {what}")
    repeat = ("" if results["settings"].get("repeat", 1) > 1 else
              "; --repeat 5 shows how far runs vary")
    return [f"- NOISY: {where}, other processes used {worst['other_cpu_s']:.1f} s of CPU in "
            f"{sampled(worst):g} s, time the servers could not have. Close other programs "
            f"(browsers, builds, other benchmarks) and run again{repeat}."]
