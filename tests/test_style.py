"""The house rules of CONTRIBUTING.md that a test can hold the code to."""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from support import ROOT, exercise_note

# Small files: the line budget of each (everything counted). Raise it in review, not quietly.
LINE_BUDGETS = {"sync_server.py": 230, "async_server.py": 230, "common.py": 230,
                "config.py": 120, "sync_http.py": 240, "async_http.py": 50}
SERVERS = ["sync_server.py", "async_server.py"]


@pytest.mark.parametrize("name, budget", LINE_BUDGETS.items())
def test_files_stay_within_their_line_budget(name, budget):
    lines = len((ROOT / name).read_text().splitlines())
    assert lines <= budget, f"{name} has {lines} lines {exercise_note(name)}"


def non_blank_lines(name):
    return [line for line in (ROOT / name).read_text().splitlines() if line.strip()]


def lines_in_common():
    """How many non-blank lines `diff` leaves unchanged between the two servers."""
    with tempfile.TemporaryDirectory() as folder:
        for name in SERVERS:
            (Path(folder) / name).write_text("\n".join(non_blank_lines(name)) + "\n")
        shown = subprocess.run(["diff", *SERVERS], cwd=folder, capture_output=True,
                               text=True).stdout.splitlines()
    return {name: len(non_blank_lines(name)) - sum(line.startswith(mark) for line in shown)
            for name, mark in zip(SERVERS, "<>")}


@pytest.mark.parametrize("name", SERVERS)
def test_at_least_half_of_each_server_survives_the_diff(name):
    common, total = lines_in_common()[name], len(non_blank_lines(name))
    assert common >= total / 2, f"{common} of {total} in common {exercise_note(*SERVERS)}"


def test_docs_quote_the_diff_as_it_is():
    """README.md and LESSON.md state how much of the servers the diff leaves alike."""
    common, total = lines_in_common(), {name: len(non_blank_lines(name)) for name in SERVERS}
    quoted = (f"{common['sync_server.py']} of sync_server.py's {total['sync_server.py']} "
              f"non-blank lines and {common['async_server.py']} of async_server.py's "
              f"{total['async_server.py']}")
    for doc in ("README.md", "LESSON.md"):
        assert quoted in " ".join((ROOT / doc).read_text().split()), (
            f"{doc}: say {quoted!r} {exercise_note(*SERVERS)}")


BENCH_BUDGET = 250  # each file of bench/ does one job: driver, one run, wrk, report...


@pytest.mark.parametrize("path", sorted(p.name for p in (ROOT / "bench").glob("*.py")))
def test_bench_files_stay_within_their_line_budget(path):
    assert len((ROOT / "bench" / path).read_text().splitlines()) <= BENCH_BUDGET


@pytest.mark.parametrize("module", ["sync_server", "async_server", "sync_http", "async_http",
                                    "common", "config"])
def test_nothing_runs_at_import_time(module):
    """Importing a server opens no pool, binds no socket, reads no environment."""
    probe = (f"import threading, {module}; "
             "assert threading.active_count() == 1; print('imported')")
    env = {"DATABASE_URL": "not a url", "REDIS_URL": "not a url", "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "imported", result.stderr


def flags_of(kind):
    shown = subprocess.run([sys.executable, f"{kind}_server.py", "--help"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout
    return set(re.findall(r"(--[a-z][a-z-]+)", shown)) - {"--help"}


def test_every_flag_has_one_name_documented_in_readme_and_lesson():
    sync, async_ = flags_of("sync"), flags_of("async")
    shared = {"--host", "--port", "--db-pool-size", "--access-log", "--io-delay-ms", "--cpu-ms"}
    assert shared <= sync and shared <= async_
    readme, lesson = (ROOT / "README.md").read_text(), (ROOT / "LESSON.md").read_text()
    for flag in sync | async_:
        assert f"`{flag}" in readme, (
            f"{flag} is not in README.md's settings table {exercise_note(*SERVERS)}")
    for flag in {"--workers", "--connect-per-request", "--io-delay-ms", "--cpu-ms", "--blocking",
                 "--db-pool-size"}:
        assert flag in lesson, f"LESSON.md never names {flag}"
