"""The project as released, which the house rules and the exercise tests hold whatever a
workshop participant edits or commits: exercises/released.txt names each file the exercises
edit by its git blob id, and git's object store keeps those bytes whatever HEAD is.

On main the list must match what is committed; a participant's workshop branch, or edits
not committed yet, are what the list is there to look past. A workshop done both ways (the
reference solutions applied and left uncommitted; committed one by one on a branch) leaves
the tests that read the tree or HEAD green.
"""

import os
import re
import subprocess
import sys

import pytest
from support import RELEASED, ROOT, blob_id, released_blobs, released_project

SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("*.diff"))
RELEASE_BRANCHES = ("main", "master")
# What reads the tree or HEAD and needs no Postgres: the house rules, the lesson's excerpts,
# this file's list, and the exercise tests that only apply solutions.
READ_THE_TREE = ["tests/test_style.py", "tests/test_lesson.py", "tests/test_released.py",
                 "tests/test_exercises.py", "-k", "not workshop and not check and not rejected"]


PARTICIPANT = {"GIT_AUTHOR_NAME": "participant", "GIT_AUTHOR_EMAIL": "p@example.org",
               "GIT_COMMITTER_NAME": "participant", "GIT_COMMITTER_EMAIL": "p@example.org"}


def git(*args, cwd=ROOT):
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True,
                          env={**os.environ, **PARTICIPANT}).stdout.strip()


def test_the_list_names_every_file_a_solution_edits():
    edited = {path for diff in SOLUTIONS
              for path in re.findall(r"^\+\+\+ b/(\S+)", diff.read_text(), re.M)}
    assert set(released_blobs()) == edited


def test_the_list_is_what_main_has_committed():
    """Held where it can be: on main (or master), with the listed files as committed."""
    if not (ROOT / ".git").exists():
        pytest.skip("no git history (a downloaded archive): nothing to compare the list with")
    listed = released_blobs()
    if any(blob_id(ROOT / path) != git("rev-parse", f"HEAD:{path}") for path in listed):
        pytest.skip("files the exercises edit differ from HEAD: the list is held once committed")
    committed = {path: git("rev-parse", f"HEAD:{path}") for path in listed}
    branch = git("branch", "--show-current")
    if committed != listed and branch not in RELEASE_BRANCHES:
        pytest.skip(f"branch {branch} commits edits to files the exercises edit (a workshop?): "
                    "the list is held on main")
    current = "".join(f"{blob}  {path}\n" for path, blob in sorted(committed.items()))
    assert committed == listed, (
        f"{RELEASED.relative_to(ROOT)} is out of date: after its comment lines it should read\n"
        f"{current}(or, if these are your workshop commits, make them on a branch: "
        "git switch -c my-workshop)")


def released_repository(path):
    """A fresh repository whose first commit, on main, is the project as released."""
    released_project(path)
    git("init", "-q", "-b", "main", cwd=path)
    git("add", "-A", cwd=path)
    git("commit", "-q", "-m", "as released", cwd=path)
    return path


def run_tree_reading_tests(project):
    ran = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          *READ_THE_TREE], cwd=project, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stdout[-4000:] + ran.stderr[-2000:]
    return ran.stdout


@pytest.mark.slow  # nested pytest sessions
@pytest.mark.parametrize("committed", [False, True], ids=["uncommitted", "committed"])
def test_a_workshop_leaves_the_tree_reading_tests_green(tmp_path, committed):
    """All six reference solutions, left in the working tree or committed one by one on a
    branch (as exercises/README.md advises): the tests that read the tree stay green."""
    project = released_repository(tmp_path / "project")
    if committed:
        git("switch", "-q", "-c", "my-workshop", cwd=project)
    for solution in SOLUTIONS:
        git("apply", str(solution), cwd=project)
        if committed:
            git("commit", "-q", "-am", solution.stem, cwd=project)
    if committed:
        assert git("status", "--porcelain", "--untracked-files=no", cwd=project) == ""
    shown = run_tree_reading_tests(project)
    assert " passed" in shown and " failed" not in shown
