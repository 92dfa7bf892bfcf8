"""Exercises 5 and 6 on platforms other than this one, simulated in a copy of the project:
a process pool started the Python 3.14 way (forkserver), and a kernel whose SO_REUSEPORT
does not spread connections (macOS)."""

import pytest
from support import released_project
from test_exercises import EXERCISES, apply, run_check, solutions_up_to

pytestmark = pytest.mark.slow  # nested pytest sessions: exercise checks


def with_solution(tmp_path, exercise):
    """The project as released, with the reference solutions up to `exercise`'s applied."""
    return apply(released_project(tmp_path / "project"),
                 *solutions_up_to(EXERCISES.index(exercise) + 1))


def replace_once(path, old, new):
    text = path.read_text()
    assert text.count(old) == 1, f"{old!r} in {path.name}"
    path.write_text(text.replace(old, new))


def test_process_pool_check_counts_forkserver_workers(tmp_path, urls):
    exercise = "05-cpu-process-pool"
    project = with_solution(tmp_path, exercise)
    server = project / "async_server.py"
    replace_once(server, "import asyncio\n", "import asyncio\nimport multiprocessing\n")
    replace_once(server, "ProcessPoolExecutor()", 'ProcessPoolExecutor(mp_context='
                 'multiprocessing.get_context("forkserver"))')
    checked = run_check(project, exercise)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_reuseport_check_skips_where_connections_are_not_spread(tmp_path, urls, monkeypatch):
    exercise = "06-reuseport"
    project = with_solution(tmp_path, exercise)
    replace_once(project / "exercises" / exercise / "check_reuseport.py",
                 'SPREADS_CONNECTIONS = sys.platform.startswith("linux")',
                 "SPREADS_CONNECTIONS = False")
    monkeypatch.setenv("PYTEST_ADDOPTS", "-rs")  # the check's pytest prints skip reasons
    checked = run_check(project, exercise)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "1 skipped" in checked.stdout
    assert "SO_REUSEPORT does not spread connections" in checked.stdout
