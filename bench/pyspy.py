"""--profile: each run's own server started by `py-spy record` (as its child: no privileges on
Linux; macOS asks for sudo), sampling the thread holding the GIL (--gil), nearly all of a
server's CPU on one core; a thread waiting on a socket, or for the GIL, is not in the samples.
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.profiles import RATE


def py_spy():
    """The py-spy command from .venv, or None where it is not installed."""
    found = Path(sys.executable).with_name("py-spy")
    return str(found) if found.exists() else shutil.which("py-spy")


def recording(command, raw_path):
    """`command` run under py-spy, writing collapsed stacks to raw_path when it exits."""
    return [py_spy(), "record", "--rate", str(RATE), "--gil", "--nonblocking", "--format", "raw",
            "--full-filenames", "--nolineno", "-o", str(raw_path), "--", *command]


def can_profile():
    """None if py-spy can record here, else the sentence that says why not."""
    if not py_spy():
        return "py-spy is not installed"
    with tempfile.TemporaryDirectory() as folder:
        trial = subprocess.run([py_spy(), "record", "--format", "raw", "-o",
                                str(Path(folder) / "trial.txt"), "--", sys.executable, "-c",
                                "import time; time.sleep(0.5)"], capture_output=True, text=True)
    if trial.returncode != 0:
        return f"py-spy cannot record here ({trial.stderr.strip().splitlines()[-1:]})"
    return None
