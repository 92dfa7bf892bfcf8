"""Every exercise's check fails on the project as shipped and passes with its reference
solution applied, in a temporary copy of the project."""

import shutil
import subprocess
import sys

import pytest
from support import ROOT

EXERCISES = sorted(path.name for path in (ROOT / "exercises").glob("[0-9][0-9]-*"))


def copy_project(destination):
    shutil.copytree(ROOT, destination, ignore=shutil.ignore_patterns(
        ".venv", ".git", "results", "__pycache__", ".pytest_cache"))
    return destination


def run_check(project, exercise):
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"exercises/{exercise}"], cwd=project, capture_output=True,
                          text=True, timeout=300)


def test_there_are_six_exercises_each_with_a_readme_check_and_solution():
    assert len(EXERCISES) >= 6
    for exercise in EXERCISES:
        assert (ROOT / "exercises" / exercise / "README.md").exists()
        assert list((ROOT / "exercises" / exercise).glob("check_*.py"))
        assert (ROOT / "exercises" / "solutions" / f"{exercise}.diff").exists()


@pytest.mark.parametrize("exercise", EXERCISES)
def test_check_fails_before_and_passes_after_the_solution(exercise, tmp_path, urls):
    project = copy_project(tmp_path / "project")
    before = run_check(project, exercise)
    assert before.returncode == 1, before.stdout + before.stderr
    assert "dit " in before.stdout  # "Edit <file>" or "edit <file>": it names what to change
    solution = ROOT / "exercises" / "solutions" / f"{exercise}.diff"
    subprocess.run(["git", "apply", str(solution)], cwd=project, check=True)
    after = run_check(project, exercise)
    assert after.returncode == 0, after.stdout + after.stderr
