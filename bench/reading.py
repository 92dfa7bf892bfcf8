"""The plain reading of a results.json: what the placements show, who served more at each
point and by how much, and what went wrong (PARTIAL, NOISY, INVALID, errors, audits).
"""

from bench.cells import (NOISY_SHARE, audit_cell, baseline_of, figure, groups, median_run,
                         percentile_cell, unaccepted)
from bench.limits import thread_ceiling


def placement_reading(results):
    """Where one request was run in several placements: per placement, in plain words, how
    the other series compared with the baseline, and the baseline's CPU, context switches and
    migrations per request, which is where a thread per connection pays for a placement."""
    base_name, by_request = baseline_of(results), {}
    for run in results["runs"]:
        request = f"{run['method']} {run.get('path', '/')} c={run.get('connections')}"
        by_request.setdefault(request, {}).setdefault(run.get("placement"), []).append(run)
    sentences = []
    for request, by_placement in by_request.items():
        if len(by_placement) < 2 or None in by_placement:
            continue
        parts = []
        for where, runs in by_placement.items():
            base = [r for r in runs if r["series"] == base_name]
            others = [r for r in runs if r["series"] != base_name]
            if not base or not others:
                continue
            b, o = median_run(base), median_run(others)
            parts.append(
                f"{where}, {o['series']} served {o['rps'] / b['rps']:.2f}x {base_name}'s "
                f"req/s ({o['rps']:,.0f} vs {b['rps']:,.0f}); {base_name} used "
                f"{figure(b.get('server_cpu_ms_per_request'), '{:.2f} ms')} of CPU, "
                f"{figure(b.get('server_switches_per_request'), '{:.1f}')} context switches "
                f"and {figure(b.get('server_migrations_per_request'), '{:.2f}')} migrations per "
                f"request, {o['series']} "
                f"{figure(o.get('server_cpu_ms_per_request'), '{:.2f} ms')}, "
                f"{figure(o.get('server_switches_per_request'), '{:.1f}')} and "
                f"{figure(o.get('server_migrations_per_request'), '{:.2f}')}")
        if parts:
            sentences.append(f"- {request}: " + "; ".join(parts) + ".")
    if sentences:
        sentences.insert(0, "Placement: shared lets the OS put every process on any CPU, as "
                         "on a laptop; isolated gives the server a core of its own, a control "
                         "no laptop has; spread gives it both cores with the load on one.")
    return sentences


def offered_reading(results):
    """For runs at a fixed offered rate: the machine's limits first, then at each point what
    each server answered of what was offered, at what latency and cost, and what it met."""
    runs = [run for run in results["runs"] if run.get("rate")]
    if not runs:
        return []
    sentences = [f"Limits: {limits_sentence(results['machine'].get('limits'))}"]
    for point, by_series in groups(runs).items():
        parts = []
        for series, series_runs in by_series.items():
            run = median_run(series_runs)
            memory = figure(run["peak_rss_mb"], "{:,.0f} MB")
            stacks = run.get("kernel_stack_kb")
            if stacks:
                memory += f" + {stacks / 1024:,.0f} MB of kernel stacks"
            parts.append(
                f"{series} answered {run['rps']:,.0f} req/s with "
                f"{figure(run.get('waiting_upstream_peak'), '{:,}')} waiting at once, p50 "
                f"{percentile_cell(run, 'p50_ms')}, p99 {percentile_cell(run, 'p99_ms')}, "
                f"{run['timeouts']:,} timeouts, {figure(run['peak_threads'], '{:,}')} threads "
                f"in {memory}; limit met: {run.get('limit_met') or 'none'}")
        sentences.append(f"- {point} offered: " + "; ".join(parts) + ".")
    return sentences


def limits_sentence(limits):
    """What stops each model first on this machine (bench/limits.py): threads for a thread
    per connection, open files for both, as read before the run."""
    if not limits:
        return "none could be read on this system."
    ceiling, name = thread_ceiling({**limits, "nofile_soft": None})  # threads alone
    shared = " machine-wide: an upper bound" if name and name.startswith("kernel.") else ""
    threads = (f"the OS would refuse the thread-per-connection server a new thread at about "
               f"{ceiling:,} ({name}{shared and ',' + shared})" if ceiling
               else "no limit on threads could be read here")
    files = figure(limits.get("nofile_soft"), "{:,}")
    first = ""
    if ceiling and limits.get("nofile_soft"):
        first = (" So the first limit here is open files, for both servers alike."
                 if limits["nofile_soft"] <= ceiling else
                 " So the first limit here is threads, for the thread-per-connection server.")
    return (f"{threads}; each process, either server and the client alike, may hold "
            f"{files} open files, one per connection.{first}")


def reading(results):
    """Plain sentences: first what the placements show, then at each point who served more
    than the baseline series and by how much, then what went wrong."""
    sentences, base_name = placement_reading(results), baseline_of(results)
    sentences += offered_reading(results)
    for point, by_series in groups(results["runs"]).items():
        if base_name not in by_series or by_series[base_name][0].get("rate"):
            continue
        base = median_run(by_series[base_name])
        for name, runs in by_series.items():
            other = median_run(runs)
            if name == base_name or not base["rps"] or not other["rps"]:
                continue
            (more, a), (less, b) = sorted([(name, other), (base_name, base)],
                                          key=lambda pair: -pair[1]["rps"])
            sentences.append(
                f"- {point}: {more} served {a['rps'] / b['rps']:.2f}x the requests per second "
                f"of {less} ({a['rps']:,.0f} vs {b['rps']:,.0f}); p99 "
                f"{percentile_cell(a, 'p99_ms')} vs {percentile_cell(b, 'p99_ms')}{opened(a, b)}; "
                f"wrk's timeouts {a['timeouts']:,} vs {b['timeouts']:,}.{noisy_note(a, b)}")
            sentences += ratio_spread(point, name, runs, by_series[base_name], base_name)
    runs = results["runs"]
    for run in runs:
        if unaccepted(run):
            sentences.append(
                f"- PARTIAL: {run['series']} at {run['point']} accepted at most "
                f"{run['peak_connections']:,} of wrk's {run['connections']:,} connections "
                f"while wrk measured; the other {unaccepted(run):,} waited in the listen "
                "queue, neither served nor counted: this row measures fewer clients.")
    for run in runs:
        if noisy(run):
            sentences.append(
                f"- NOISY: during {run['series']} at {run['point']}, other processes on this "
                f"machine used {run['other_cpu_s']:.1f} s of CPU in {run['duration_s']} s: "
                "they took CPU from what was measured; compare with care, or run it again.")
    invalid = [r for r in runs if not r["valid"]]
    if invalid:
        sentences.append(f"- {len(invalid)} run(s) had socket connect errors and are INVALID: "
                         "wrk could not open all its connections (an open-files or backlog "
                         "limit on this machine, as in the article's 257 and 1257), so they "
                         "measured fewer connections than asked.")
    errors = [r for r in runs if r["non_2xx"]]
    for run in errors:
        sentences.append(f"- {run['series']} at {run['point']} answered {run['non_2xx']:,} "
                         "requests with an error status (see its server log).")
    failed = [r for r in runs if r["audit"]["result"] != "ok"]
    for run in failed:
        sentences.append(f"- Audit {run['audit']['result']} for {run['series']} at "
                         f"{run['point']}: {audit_cell(run)}.")
    return "\n".join(sentences)


def opened(a, b):
    """How long each server took to answer every connection wrk opened, if both were read."""
    times = [(run.get("opening") or {}).get("all_answered_s") for run in (a, b)]
    if None in times:
        return ""
    return f"; every connection answered once after {times[0]:.1f} s vs {times[1]:.1f} s"


def noisy(run):
    return (run.get("other_cpu_s") or 0) > NOISY_SHARE * run.get("duration_s", 0)


def noisy_note(a, b):
    """A headline that rests on a run other processes disturbed says so."""
    if not (noisy(a) or noisy(b)):
        return ""
    return " This rests on a NOISY run (below): run it again before reading much into it."


def ratio_spread(point, name, runs, base_runs, base_name):
    """With repeats: this series' ratio to the baseline in each repeat, and their range."""
    base_by_repeat = {run.get("repeat"): run["rps"] for run in base_runs}
    ratios = [run["rps"] / base_by_repeat[run.get("repeat")] for run in runs
              if base_by_repeat.get(run.get("repeat"))]
    if len(ratios) < 2:
        return []
    listed = ", ".join(f"{ratio:.2f}x" for ratio in ratios)
    if min(ratios) <= 1 <= max(ratios):
        verdict = "the range holds 1.00x: these repeats show no difference either way"
    elif len(ratios) < 5:
        verdict = f"one side in each, but {len(ratios)} repeats are few"
    else:
        verdict = f"{'above' if min(ratios) > 1 else 'below'} 1.00x in every repeat"
    return [f"- {point}: {name} / {base_name}, repeat by repeat: {listed} (range "
            f"{min(ratios):.2f}x–{max(ratios):.2f}x; {verdict})."]
