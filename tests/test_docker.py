"""The Docker image holds what the servers need: the files its COPY lines name, copied into an
empty folder as docker build would copy them, are enough to import and start both servers.
No Docker engine is needed; where one answers, `docker build` runs too."""

import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
from bench.launch import KINDS
from support import ROOT, call, free_port

MODULES = re.compile(r"^\w+\.py$")


def copy_lines(dockerfile):
    """[(sources, destination)] of each COPY line, in order."""
    copies = []
    for line in dockerfile.splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY":
            paths = [word for word in words[1:] if not word.startswith("--")]
            copies.append((paths[:-1], paths[-1]))
    return copies


def image_files(dockerfile, folder):
    """Copy what the COPY lines name from the project into `folder`, the image's WORKDIR."""
    for sources, destination in copy_lines(dockerfile):
        for source in sources:
            target = folder / destination
            if (ROOT / source).is_dir():
                shutil.copytree(ROOT / source, target, dirs_exist_ok=True)
            else:
                if destination.endswith(("/", ".")):
                    target = target / source
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target)
    return folder


def imports_in(folder):
    """Import both servers in `folder` alone: the CompletedProcess."""
    return subprocess.run([sys.executable, "-c", "import sync_server, async_server"],
                          cwd=folder, env={"PATH": "/usr/bin:/bin"}, capture_output=True,
                          text=True, timeout=60)


def dockerfile():
    return (ROOT / "Dockerfile").read_text()


def test_the_image_holds_every_module_the_servers_import(tmp_path):
    result = imports_in(image_files(dockerfile(), tmp_path))
    assert result.returncode == 0, f"Dockerfile: COPY what is missing:\n{result.stderr}"


@pytest.mark.parametrize("kind", KINDS)
def test_each_server_starts_and_answers_from_the_image_files(kind, tmp_path, urls):
    folder, port = image_files(dockerfile(), tmp_path), free_port()
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        server = subprocess.Popen([sys.executable, f"{kind}_server.py", "--port", str(port)],
                                  cwd=folder, env={"PATH": "/usr/bin:/bin", **urls},
                                  stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while "serving on" not in log.read_text() and server.poll() is None:
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        assert server.poll() is None, log.read_text()
        assert call(port, "GET", "/health").status == 200
        assert call(port, "GET", "/").status == 200  # the template came along
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=15)


@pytest.mark.parametrize("dropped", sorted(
    source for sources, _ in copy_lines(dockerfile()) for source in sources
    if MODULES.match(source)))
def test_dropping_any_module_from_the_copy_lines_fails_the_import(dropped, tmp_path):
    without = re.sub(rf"(?<=\s){re.escape(dropped)}(?=\s)", "", dockerfile())
    assert imports_in(image_files(without, tmp_path)).returncode != 0, (
        f"the servers import without {dropped}: does the image need it?")


def engine_answers():
    docker = shutil.which("docker")
    return docker and subprocess.run([docker, "info"], capture_output=True).returncode == 0


@pytest.mark.skipif(not engine_answers(), reason="no Docker engine answers here")
def test_docker_build_succeeds():
    result = subprocess.run(["docker", "build", "-q", "."], cwd=ROOT, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0, result.stderr
