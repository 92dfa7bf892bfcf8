"""The linters hold: ruff on the Python (its rules and why in ruff.toml), shellcheck on every
shell script. A failure prints what they found, file and line."""

import shutil
import subprocess
import sys
from importlib.util import find_spec

import pytest
from support import ROOT

SHELL_SCRIPTS = ["run_bench.sh", "run_tests.sh", ".ci/run",
                 *sorted(str(path.relative_to(ROOT)) for path in ROOT.glob("scripts/*.sh"))]


def test_python_passes_ruff():
    assert find_spec("ruff"), "ruff is not installed: ./run_tests.sh installs requirements-dev.txt"
    found = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], cwd=ROOT,
                           capture_output=True, text=True)
    assert found.returncode == 0, found.stdout + found.stderr


def test_shell_scripts_pass_shellcheck():
    if not shutil.which("shellcheck"):
        pytest.skip("shellcheck is not installed and could not be: ./run_tests.sh installs it "
                    "with apt-get only as root (else: brew install shellcheck)")
    # -x follows `. scripts/bootstrap.sh`, so its functions are checked where they are used
    found = subprocess.run(["shellcheck", "-x", *SHELL_SCRIPTS], cwd=ROOT, capture_output=True,
                           text=True)
    assert found.returncode == 0, found.stdout + found.stderr
