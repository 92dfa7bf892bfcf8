"""Is the test suite steady? Run it several times from fresh clones and list every failure.

A test that fails one run in three turns a participant's suite red for nothing, and passes
the one run a change gets before it lands. This runs ./run_tests.sh (all of its arguments
after --) in fresh clones of HEAD as it was when it started, some plain and some with the
seven reference solutions applied, as a participant has them after the workshop, one after
the other, and prints each run's time and counts and every failure with its first lines.

    python3 scripts/steady.py --plain 2 --solved 3 -- --all    # five full runs, about an hour
    python3 scripts/steady.py --solved 4 -- -k "bench or report"  # the fast tier's, filtered

Standard library only. Each clone builds its own .venv, as a new machine would; what is
not committed is not in the clones. Logs and JUnit files stay in --out.
"""

import argparse
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "exercises" / "solutions").glob("*.diff"))


def clone(into, commit, solved):
    """A fresh clone at `commit`, with the reference solutions applied in order."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(into)], check=True)
    subprocess.run(["git", "checkout", "-q", commit], cwd=into, check=True)
    for solution in SOLUTIONS if solved else []:
        subprocess.run(["git", "apply", str(solution)], cwd=into, check=True)


def failures(junit):
    """[(test id, first lines of its message)] for each failure and error in a JUnit file."""
    if not junit.exists():
        return [("(no JUnit file: pytest did not finish)", "")]
    found = []
    for case in ElementTree.parse(junit).getroot().iter("testcase"):
        for problem in [*case.findall("failure"), *case.findall("error")]:
            text = (problem.get("message") or problem.text or "").strip().splitlines()
            found.append((f"{case.get('classname')}::{case.get('name')} ({problem.tag})",
                          "\n".join(text[:6])))
    return found


def counts(junit):
    """'N passed, N failed, N errors, N skipped' from a JUnit file."""
    if not junit.exists():
        return "no result"
    suite = ElementTree.parse(junit).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    tests, failed, errors, skipped = (int(suite.get(key, 0)) for key in
                                      ("tests", "failures", "errors", "skipped"))
    return (f"{tests - failed - errors - skipped} passed, {failed} failed, {errors} errors, "
            f"{skipped} skipped")


def run_once(number, commit, solved, out, args):
    """One full run in a fresh clone: (seconds, counts, failures)."""
    junit, log = out / f"run-{number}.xml", out / f"run-{number}.log"
    with tempfile.TemporaryDirectory(prefix="steady-") as folder:
        project = Path(folder) / "project"
        clone(project, commit, solved)
        started = time.monotonic()
        with open(log, "w") as written:
            subprocess.run(["./run_tests.sh", f"--junitxml={junit}", *args], cwd=project,
                           stdout=written, stderr=subprocess.STDOUT)
        seconds = time.monotonic() - started
    return seconds, counts(junit), failures(junit)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
        epilog="Arguments after -- go to ./run_tests.sh (and so to pytest).")
    parser.add_argument("--plain", type=int, default=2, help="runs of the project as it is")
    parser.add_argument("--solved", type=int, default=3,
                        help="runs with the seven reference solutions applied")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "steady",
                        help="folder for each run's log and JUnit file")
    args, rest = parser.parse_known_args(argv)
    rest = rest[1:] if rest[:1] == ["--"] else rest
    args.out.mkdir(parents=True, exist_ok=True)
    plan, plain, solved = [], args.plain, args.solved
    while plain or solved:  # alternate, so a slow hour does not fall on one kind of run
        plan.append(solved >= plain)
        plain, solved = (plain, solved - 1) if plan[-1] else (plain - 1, solved)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=True).stdout.strip()  # every run the same code
    print(f"==> {len(plan)} runs of {commit[:10]}; logs in {args.out}", flush=True)
    found_any = False
    for number, solved in enumerate(plan, 1):
        kind = "solutions applied" if solved else "as committed"
        print(f"==> run {number}/{len(plan)}, {kind}: ./run_tests.sh {' '.join(rest)}",
              flush=True)
        seconds, summary, failed = run_once(number, commit, solved, args.out, rest)
        print(f"    {seconds / 60:.1f} min: {summary} (log: {args.out}/run-{number}.log)",
              flush=True)
        for test, message in failed:
            found_any = True
            print(f"    FAILED {test}")
            print("\n".join(f"        {line}" for line in message.splitlines()))
    print("==> steady: every run passed" if not found_any else "==> NOT steady: see above")
    return 1 if found_any else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
