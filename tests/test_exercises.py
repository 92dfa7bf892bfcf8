"""The exercises as a room works through them, in a copy of the project as released
(support.released_project: the files the exercises edit as exercises/released.txt lists
them, whatever a participant has edited or committed in this working tree).

Every check fails on the project as shipped. The reference solutions stack: each applies on
top of the ones before it, check N still fails with solutions 1..N-1 applied and passes with
1..N, and with all six every check passes. Each plausible wrong solution in
tests/wrong_solutions/ (NN-name.what.diff, made with solutions 1..NN-1 applied) is rejected
by its exercise's check; each correct one built another way (tests/other_solutions/) passes.
"""

import importlib.util
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree

import pytest
from support import ROOT, released_project

pytestmark = pytest.mark.slow  # nested pytest sessions: each exercise's check

EXERCISES = sorted(path.name for path in (ROOT / "exercises").glob("[0-9][0-9]-*"))
SOLUTIONS = ROOT / "exercises" / "solutions"
WRONG = sorted((ROOT / "tests" / "wrong_solutions").glob("*.diff"))
OTHER = sorted((ROOT / "tests" / "other_solutions").glob("*.diff"))


def apply(project, *diffs):
    for diff in diffs:
        subprocess.run(["git", "apply", str(diff)], cwd=project, check=True)
    return project


def solutions_up_to(number):
    """Reference solutions 1..number, in order."""
    return [SOLUTIONS / f"{exercise}.diff" for exercise in EXERCISES[:number]]


def run_check(project, *exercises):
    """Run the checks of `exercises` (all if none) in `project`; the CompletedProcess."""
    targets = [f"exercises/{exercise}" for exercise in exercises] or ["exercises"]
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--junitxml", "checks.xml", *targets], cwd=project,
                          capture_output=True, text=True, timeout=300)


def outcomes(project, *exercises):
    """{exercise: the assertion messages of its failed tests, [] if all passed or skipped}."""
    ran = run_check(project, *exercises)
    failures = {exercise: [] for exercise in (exercises or EXERCISES)}
    for case in ElementTree.parse(project / "checks.xml").iter("testcase"):
        exercise = re.search(r"\d\d-[a-z0-9-]+", case.get("classname") + case.get("name"))
        for failed in [*case.iter("failure"), *case.iter("error")]:
            failures[exercise.group()].append(failed.get("message", ""))
    return failures, ran.stdout[-3000:] + ran.stderr[-2000:]


def test_there_are_six_exercises_each_with_a_readme_check_and_solution():
    assert len(EXERCISES) >= 6
    for exercise in EXERCISES:
        assert (ROOT / "exercises" / exercise / "README.md").exists()
        assert list((ROOT / "exercises" / exercise).glob("check_*.py"))
        assert (SOLUTIONS / f"{exercise}.diff").exists()


def test_every_check_fails_on_the_project_as_shipped_and_names_the_file(tmp_path, urls):
    failures, shown = outcomes(released_project(tmp_path / "project"))
    for exercise, messages in failures.items():
        assert messages, f"{exercise}'s check passes on the project as shipped:\n{shown}"
        assert any("dit " in message for message in messages), (  # "Edit <file>"
            f"{exercise}'s check fails without naming the file to edit: {messages}")


@pytest.mark.timeout(900)  # seven checks, one after another: 96 s here, longer on a laptop
def test_solutions_stack_each_turning_its_own_check_green(tmp_path, urls):
    project = released_project(tmp_path / "project")
    for number, exercise in enumerate(EXERCISES, 1):
        apply(project, SOLUTIONS / f"{exercise}.diff")  # fails here if it does not stack
        following = EXERCISES[number:number + 1]
        failures, shown = outcomes(project, *([exercise, *following] if following else []))
        assert failures[exercise] == [], (
            f"with solutions 1..{number} applied, {exercise}'s check fails:\n{shown}")
        if following:
            assert failures[following[0]], (
                f"with solutions 1..{number} applied, {following[0]}'s check already passes")
        else:  # all six applied: every check at once, as ./run_tests.sh exercises runs them
            assert not any(failures.values()), f"with all solutions applied:\n{shown}"


@pytest.mark.parametrize("wrong", WRONG, ids=[path.name for path in WRONG])
def test_a_plausible_wrong_solution_is_rejected(wrong, tmp_path, urls):
    exercise = wrong.name.split(".")[0]
    project = released_project(tmp_path / "project")
    apply(project, *solutions_up_to(EXERCISES.index(exercise)), wrong)
    failures, shown = outcomes(project, exercise)
    assert failures[exercise], f"{wrong.name} passes {exercise}'s check:\n{shown}"


@pytest.mark.parametrize("other", OTHER, ids=[path.name for path in OTHER])
def test_a_correct_solution_built_another_way_passes(other, tmp_path, urls):
    """A check judges what the code does, not how it is built (tests/other_solutions/)."""
    exercise = other.name.split(".")[0]
    project = released_project(tmp_path / "project")
    apply(project, *solutions_up_to(EXERCISES.index(exercise)), other)
    failures, shown = outcomes(project, exercise)
    assert failures[exercise] == [], f"{other.name} fails {exercise}'s check:\n{shown}"


def test_every_exercise_has_a_wrong_solution_its_check_rejects():
    assert {path.name.split(".")[0] for path in WRONG} == set(EXERCISES)


def test_solutions_come_out_again_last_first(tmp_path):
    """`git apply -R` takes out the last solution applied, and so on back to the shipped
    project, byte for byte: what exercises/README.md tells a stuck participant."""
    project = apply(released_project(tmp_path / "project"), *solutions_up_to(len(EXERCISES)))
    for solution in reversed(solutions_up_to(len(EXERCISES))):
        subprocess.run(["git", "apply", "-R", str(solution)], cwd=project, check=True)
    shipped = released_project(tmp_path / "shipped")
    assert subprocess.run(["diff", "-r", str(shipped), str(project)],
                          capture_output=True).returncode == 0


def test_exercise_7_says_its_collection_counts_are_per_generation():
    """/gc's [109, 9, 1] printed in words: a participant reads which count is which."""
    path = ROOT / "exercises/07-tame-the-collector/check_collector.py"
    spec = importlib.util.spec_from_file_location("check_collector", path)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.by_generation([109, 9, 1]) == (
        "collections by generation: 109 young, 9 middle, 1 old (full)")


def test_exercise_3_can_be_skipped_as_exercises_readme_says():
    """Solution 3 edits files that solutions 4 to 6 do not touch, so these apply without it
    (their checks need nothing of it either: none starts a server with its flag)."""
    def files(exercise):
        diff = (SOLUTIONS / f"{exercise}.diff").read_text()
        return set(re.findall(r"^\+\+\+ b/(\S+)", diff, re.M))
    later = set().union(*(files(exercise) for exercise in EXERCISES[3:6]))
    assert files(EXERCISES[2]) and not files(EXERCISES[2]) & later
    for exercise in EXERCISES[3:6]:
        check = next((ROOT / "exercises" / exercise).glob("check_*.py")).read_text()
        assert "connect-per-request" not in check and "connect_per_request" not in check
    readme = " ".join((ROOT / "exercises/README.md").read_text().split())
    assert "Exercise 3 can be skipped" in readme
