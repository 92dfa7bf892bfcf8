"""report.html, the flame graphs and the terminal summary, on the committed runs in docs/runs/:
each page opens cleanly in a real browser, is what the code renders from results.json, and
the terminal summary fits an ordinary terminal. ./run_bench.sh's own are in test_bench.py.
"""

import html
import json
import re
import shutil
import subprocess
import sys

import pytest
from browser import assert_opens_cleanly, open_pages
from support import ROOT

from bench.report.cells import littles_law_off, percentile_cell, summarize
from bench.report.charts import drawn
from bench.report.flamegraphs import flamegraph_svg
from bench.report.reading import SMOKE_TEST, cause, reading
from bench.report import COLUMNS, render_summary, terminal_summary, write_report

RUNS = sorted(path.parent for path in (ROOT / "docs" / "runs").glob("*/results.json"))


def local_files(report):
    """What a report.html links to beside it."""
    return re.findall(r'href="([^":#]+)"', report.read_text())


@pytest.mark.slow  # Chromium
def test_committed_reports_and_a_flame_graph_open_cleanly_in_chromium():
    """A run with repeats (bars with ranges), a sweep with idle connections (memory per
    connection) and a profiled run with its flame graphs, in real headless Chromium."""
    reports = [ROOT / "docs/runs" / name / "report.html"
               for name in ("fair-repeat5", "c10k", "profile-fair")]
    flame = ROOT / "docs/runs/profile-fair" / json.loads(
        (ROOT / "docs/runs/profile-fair/results.json").read_text())["runs"][1]["profile"][
            "flamegraph"]
    zoom = ("(() => { document.querySelectorAll('g.frame')[5].dispatchEvent("
            "new MouseEvent('click')); return {svgs: 1, links: [], images: [], frames: "
            "document.querySelectorAll('g.frame').length}; })()")
    opened = open_pages(reports)
    for page, (problems, found) in zip(reports, opened):
        assert_opens_cleanly(page, problems, found, charts=5)
    [(problems, found)] = open_pages([flame], zoom)  # a click zooms without an error
    assert problems == [] and found["frames"] > 20, (problems, found)


@pytest.mark.parametrize("run", RUNS, ids=lambda path: path.name)
def test_committed_report_is_what_the_code_renders(run, tmp_path):
    """python -m bench.report DIR writes report.html (and the flame graphs) again from
    results.json, as committed: regenerate them when the rendering changes."""
    copy = tmp_path / run.name
    shutil.copytree(run, copy)
    subprocess.run([sys.executable, "-m", "bench.report", str(copy)], cwd=ROOT, check=True,
                   capture_output=True)
    for name in ["report.html", "summary.md", "chart.svg"] + local_files(copy / "report.html"):
        assert (copy / name).exists(), f"{run.name}: report.html links to missing {name}"
        assert (copy / name).read_bytes() == (run / name).read_bytes(), (
            f"docs/runs/{run.name}/{name} is not what the code renders: "
            f"python -m bench.report docs/runs/{run.name}")


def test_every_chart_draws_every_row_and_marks_a_percentile_past_the_timeout():
    """A chart must never draw the worst case as the best: in report.html and chart.svg of
    every committed run, each chart has each row of the summary's table as a bar, a point or
    a mark, and a p99 past the timeout is marked, labelled as the table and terminal say it."""
    marked = 0
    for run in RUNS:
        results = json.loads((run / "results.json").read_text())
        rows = summarize(results)
        names = [f"{row['series']} at {row['point']}" for row in rows]
        printed = terminal_summary(results, run / "report.html")
        for page, one_chart in (("report.html", r'<svg class="chart".*?</svg>'),
                                ("chart.svg", r"<g transform.*?</g>")):
            text = (run / page).read_text()
            charts = re.findall(one_chart, text, re.S)
            charts = [chart for chart in charts if "per idle connection" not in chart]
            assert charts, f"{run.name}/{page} has no chart"
            if results.get("capacity"):  # a panel a method, p50 and p99 at each offered rate
                drawn = [html.unescape(name) for name in re.findall(r'data-cell="([^"]+)"',
                                                                    "".join(charts))]
                grid = {name for name, row in zip(names, rows) if row["run"]["rate"]}
                for name in grid:
                    p99 = next(cell for cell in drawn if cell.startswith(f"{name}: p99 "))
                    assert any(cell.startswith(f"{name}: p50 ") for cell in drawn), name
                    past = dict(zip(names, rows))[name]["run"]["p99_ms"] is None
                    assert ("p99 > " in p99) == past, p99
                    marked += past
                continue
            for chart in charts:
                drawn = {html.unescape(name) for name in re.findall(r'data-cell="([^"]+)"', chart)}
                assert drawn == set(names), f"{run.name}/{page}: {set(names) - drawn} not drawn"
            for row in rows:
                what = html.escape(f"{row['series']} at {row['point']}")
                if "slices" in row["run"]:  # interleaved: not timed, never "past the timeout"
                    assert f'class="past" data-cell="{what}"' not in text, what
                    continue
                if row["run"]["p99_ms"] is None:
                    label = f"&gt; {row['run']['timeout_s']} s"
                    assert re.search(f'class="past" data-cell="{re.escape(what)}".*?{label}',
                                     text), f"{run.name}/{page}: {what} past, not marked"
                    assert f"> {row['run']['timeout_s']} s" in printed
                    marked += 1
    assert marked, "no committed run has a p99 past the timeout: the test cannot fail"


@pytest.mark.parametrize("run", RUNS, ids=lambda path: path.name)
def test_terminal_summary_fits_an_ordinary_terminal(run):
    results = json.loads((run / "results.json").read_text())
    printed = terminal_summary(results, run / "report.html")
    wide = [line for line in printed.splitlines() if len(line) > COLUMNS]
    assert not wide, f"{len(wide)} lines over {COLUMNS} columns:\n" + "\n".join(wide)
    assert "report.html" in printed.splitlines()[-1]


@pytest.mark.parametrize("run", RUNS, ids=lambda path: path.name)
def test_summarys_first_table_fits_an_ordinary_terminal(run):
    """summary.md opens with a short table, within COLUMNS, that README.md copies rows from;
    the table after it has every column."""
    summary = (run / "summary.md").read_text()
    first = summary[summary.index("\n|") + 1:].split("\n\n")[0].splitlines()
    assert first[0].split(" | ")[1:3] == ["Server", "Req/s"]
    assert len(first) == 2 + len(summarize(json.loads((run / "results.json").read_text())))
    wide = [line for line in first if len(line) > COLUMNS]
    assert not wide, f"{run.name}: {len(wide)} lines over {COLUMNS} columns:\n" + "\n".join(wide)


def test_flame_graph_draws_request_handling_root_at_the_top():
    """Start-up stacks (imports) are counted, not drawn; the root is the first row."""
    module = "<module> (/srv/async_server.py)"
    stacks = [([module, "_find_and_load (<frozen importlib._bootstrap>)", "x (/a/b.py)"], 7),
              ([module, "main (/srv/async_server.py)", "index (/srv/async_server.py)"], 3)]
    svg = flamegraph_svg(stacks, "async at GET /")
    assert "3 samples of request handling; 7 samples of start-up (imports) left out" in svg
    assert "importlib" not in svg.split("<g ", 1)[1]
    depths = dict(re.findall(r'data-depth="(\d+)" data-name="([^"]+)"', svg))
    assert depths == {"0": "all", "1": "&lt;module&gt;", "2": "main", "3": "index"}
    rows = [float(y) for y in re.findall(r'<rect x="[\d.]+" y="([\d.]+)"', svg)]
    assert rows == sorted(rows)  # callers above callees


def test_flame_graphs_are_made_from_the_raw_stacks_that_the_shares_count():
    """The shares LESSON.md quotes stay computable: each profiled run keeps its raw stacks."""
    for run in RUNS:
        for recorded in json.loads((run / "results.json").read_text())["runs"]:
            if recorded.get("profile"):
                assert (run / recorded["profile"]["raw"]).stat().st_size > 0
                assert (run / recorded["profile"]["flamegraph"]).exists()


def committed(name):
    return json.loads((ROOT / "docs/runs" / name / "results.json").read_text())


def as_quick(results):
    """A committed run's results as if it had been run with --quick."""
    return {**results, "settings": {**results["settings"], "quick": True}}


def test_a_quick_run_says_it_is_a_smoke_test_and_gives_no_verdict(tmp_path):
    """Terminal, summary.md and report.html each say what --quick is; the reading says
    whether everything ran, with no ratio and no cause."""
    results = as_quick(committed("fair"))
    printed = terminal_summary(results, tmp_path / "report.html")
    said = reading(results)
    assert printed.splitlines()[0] == f"--quick is a {SMOKE_TEST}."
    assert SMOKE_TEST in said and "10 of 10 runs" in said
    assert not re.search(r"\d\.\d\dx", said) and "Why" not in said  # no ratio, no cause
    write_report(results, tmp_path)
    for name in ("summary.md", "report.html"):
        assert f"--quick is a {SMOKE_TEST}." in (tmp_path / name).read_text()
    assert SMOKE_TEST not in reading(committed("fair"))  # a measurement is not one


def test_report_html_leads_with_the_reading_and_the_legend_follows_the_tables(tmp_path):
    results = committed("fair")
    write_report(results, tmp_path)
    page = (tmp_path / "report.html").read_text()
    order = [page.index(text) for text in ("<h1>", "<h2>What it says</h2>", "Machine: ",
                                           "<h2>At a glance</h2>", "<table>",
                                           "Each wrk run opens", "<h2>Inside the runs</h2>")]
    assert order == sorted(order)
    assert page.count("<h2>What it says</h2>") == 1


def test_noisy_runs_get_one_line_that_says_what_to_do():
    results = committed("fair")
    results["runs"] = [{**run, "other_cpu_s": 2.0 + n / 10}
                       for n, run in enumerate(results["runs"])]
    noisy = [line for line in reading(results).splitlines() if "NOISY" in line]
    assert noisy == [
        "- NOISY: in 10 of 10 runs, the most during async at POST /items c=500, isolated, "
        "other processes used 2.9 s of CPU in 6 s, time the servers could not have. Close "
        "other programs (browsers, builds, other benchmarks) and run again; --repeat 5 shows "
        "how far runs vary."]


def test_one_server_alone_has_no_ratio_and_says_why():
    """--only async: no Ratio column (and no column of "-"), no "Ratio: to sync", and a
    reading that says there was nothing to compare."""
    results = committed("python-312-lazy-tasks")
    assert results["settings"]["only"] == "async"
    printed = terminal_summary(results, ROOT / "report.html")
    table = printed.split("What it says:")[0]
    assert "Ratio" not in table and not re.search(r" - ", table)
    said = printed.split("What it says:\n")[1].split("\n\n")[0]
    assert said.startswith("- Only async ran (--only async): no Ratio, as sync did not run")
    summary = render_summary(results)
    assert "| Ratio |" not in summary
    assert "No Ratio column: only async ran" in summary.replace("\n", " ")  # the legend, wrapped


def test_the_why_line_sets_placements_side_by_side_not_the_next_point():
    """'Why' gives the baseline's cost in the other placements of the same request; in a
    scenario that varies a knob (cpu 0, 2, 10 ms), the next point is not one of them."""
    def why(name):
        results = json.loads((ROOT / "docs/runs" / name / "results.json").read_text())
        [line] = cause(results, summarize(results))
        return line
    assert "; sync on " not in why("cpu")
    assert "; sync on isolated, " in why("fair")


def test_a_percentile_reads_with_its_sample_count_its_interval_and_a_mark_when_few():
    """p99 of 300 requests has 3 slower than it: marked, as p99 of 1,000 (10 slower) is not.
    An interval's upper bound past the last sample was not measured: "from" its lower."""
    run = {"timeout_s": 2, "p50_ms": 90.0, "p99_ms": 905.3, "latency_samples": 300,
           "p50_interval_ms": [80.0, 101.5], "p99_interval_ms": [700.0, None]}
    assert percentile_cell(run, "p50_ms") == "90.0 ms (n=300)"
    assert percentile_cell(run, "p50_ms", "interval") == "90.0 ms (n=300, 95%: 80.0–101.5 ms)"
    assert percentile_cell(run, "p99_ms", "interval") == "905.3 ms (n=300, 95%: from 700.0 ms)†"
    assert percentile_cell(run, "p99_ms", "short") == "905 (300)†"
    assert percentile_cell({**run, "p99_ms": None}, "p99_ms") == "> 2 s (n=300)†"
    assert percentile_cell({**run, "latency_samples": 1000}, "p99_ms") == "905.3 ms (n=1,000)"
    assert percentile_cell({**run, "p50_interval_ms": None}, "p50_ms", "interval") == (
        "90.0 ms (n=300)")  # not recorded: nothing made up


def test_committed_runs_give_each_percentiles_count_and_say_no_interval_was_recorded():
    summary = (ROOT / "docs/runs/fair/summary.md").read_text()
    assert "| 905 (300)† |" in summary and "| 905.3 ms (n=300)† |" in summary
    assert "interval not recorded" in summary.replace("\n", " ")


def test_a_p99_from_too_few_requests_is_drawn_as_an_outline_not_a_filled_bar():
    def p99_bars(results):
        [chart] = [parts for parts, _ in drawn(results) if "p99 latency" in "".join(parts)]
        return [part for part in chart if 'class="bar"' in part]
    results = committed("fair")
    assert p99_bars(results) and all('fill="none"' in bar for bar in p99_bars(results))
    many = {**results, "runs": [{**run, "latency_samples": 1000} for run in results["runs"]]}
    assert not any('fill="none"' in bar for bar in p99_bars(many))


def off_by(run, percent):
    """The run with req/s x the probe's mean latency `percent` off its mean in service."""
    return {**run, "littles_law_in_service": round(run["mean_in_service"] * (1 + percent / 100),
                                                   1)}


def test_a_run_whose_probe_is_20_percent_off_littles_law_is_flagged_and_10_percent_is_not():
    results = committed("fair")
    for percent, flagged in ((20, True), (-20, True), (10, False), (-10, False)):
        run = off_by(results["runs"][1], percent)  # async, GET / c=500, shared
        assert littles_law_off(run) == (percent if flagged else None)
        one = {**results, "runs": [run]}
        summary, said = render_summary(one), reading(one)
        assert (f"({percent:+d}%)‡ |" in summary) is flagged  # Inside the runs
        assert ("(300)†‡ |" in summary) is flagged and ("(n=300)‡ |" in summary) is flagged
        assert (f"async at GET / c=500, shared, {percent:+d}%" in said) is flagged
    run = off_by(results["runs"][1], 20)
    assert littles_law_off({**run, "rate": 100}) is None  # open loop: no probe to check
    assert littles_law_off({**run, "knobs": {"workers": 2}}) is None  # in service: a worker's


def test_committed_runs_that_break_littles_law_say_by_how_much():
    fair = (ROOT / "docs/runs/fair/summary.md").read_text().replace("\n", " ")
    assert "sync at GET / c=1500, shared, -28%" in fair and "| 4,727 (216)†‡ |" in fair
    assert "async at GET / c=500, isolated, +64%" in reading(committed("python-312-lazy-tasks"))
    assert "LATENCY" not in reading(committed("cpu"))  # every run within 15%: none flagged
