"""scripts/bootstrap.sh on the machines learners bring, simulated: its functions run in a
bash subshell with fake programs (brew, python3, sysctl, ulimit) and a fake Debian folder.
No service is started and nothing is installed; every test counts and compares output."""

import os
import shutil
import signal
import subprocess
import sys

import pytest
from support import ROOT, wait_until

BASE_PATH = "/usr/bin:/bin"  # bash, cksum, sed; no Postgres programs (checked below)


def run_bootstrap(script, tmp_path, **env):
    """Source bootstrap.sh in `bash -c`, run `script`; PATH starts with tmp_path/bin."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    env = {"HOME": str(tmp_path), "PATH": f"{tmp_path / 'bin'}:{BASE_PATH}",
           "PG_DEBIAN_GLOB": str(tmp_path / "usr/lib/postgresql/*/bin"), **env}
    return subprocess.run(["bash", "-c", f"set -euo pipefail; . scripts/bootstrap.sh; {script}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def fake_program(path, body):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def fake_postgres(folder):
    for name in ("initdb", "pg_ctl"):
        fake_program(folder / name, "exit 0")
    return folder


def fake_brew(tmp_path, formula, prefix):
    """`brew --prefix FORMULA` prints PREFIX; like Homebrew it prints a path for others too."""
    fake_program(tmp_path / "bin" / "brew", f"""
[ "$1" = --prefix ] || exit 1
case "$2" in {formula}) echo {prefix} ;; *) echo {tmp_path}/not-installed/"$2" ;; esac""")


def test_postgres_on_path_comes_first_and_none_anywhere_is_missing(tmp_path):
    """On a PATH of our own (bash and dirname only), no Debian folder and no brew: Postgres
    is missing; then, with one version in the Debian folder and another on PATH, the one on
    PATH is used."""
    (tmp_path / "bin").mkdir()
    for program in ("bash", "dirname"):
        (tmp_path / "bin" / program).symlink_to(shutil.which(program))
    path = {"PATH": str(tmp_path / "bin")}
    assert run_bootstrap("have initdb", tmp_path, **path).returncode == 1
    fake_postgres(tmp_path / "usr/lib/postgresql/16/bin")
    fake_postgres(tmp_path / "bin")
    shown = run_bootstrap("postgres_bin_dir", tmp_path, **path)
    assert shown.stdout.strip() == str(tmp_path / "bin"), shown.stderr


def test_debian_folders_newest_version_first(tmp_path):
    for version in ("9.6", "16", "15"):
        fake_postgres(tmp_path / f"usr/lib/postgresql/{version}/bin")
    shown = run_bootstrap("postgres_bin_dir", tmp_path)
    assert shown.stdout.strip() == str(tmp_path / "usr/lib/postgresql/16/bin"), shown.stderr


def test_homebrew_keg_only_postgresql_is_found(tmp_path):
    keg = tmp_path / "opt/homebrew/opt/postgresql@18"
    fake_postgres(keg / "bin")
    fake_brew(tmp_path, "postgresql@18", keg)
    shown = run_bootstrap("postgres_bin_dir; have initdb && echo have", tmp_path)
    assert shown.stdout.split() == [str(keg / "bin"), "have"], shown.stderr


def test_plain_postgresql_formula_is_found_too(tmp_path):
    keg = tmp_path / "usr/local/opt/postgresql"
    fake_postgres(keg / "bin")
    fake_brew(tmp_path, "postgresql", keg)
    shown = run_bootstrap("postgres_bin_dir", tmp_path)
    assert shown.stdout.strip() == str(keg / "bin"), shown.stderr


def test_missing_programs_get_a_brew_command_that_installs_them(tmp_path):
    fake_brew(tmp_path, "none", tmp_path / "nowhere")
    shown = run_bootstrap("can_apt() { false; }; ensure_system_packages initdb", tmp_path)
    assert shown.returncode == 1
    assert shown.stderr == ("error: missing programs: initdb\n"
                            "Install them with:\n  brew install postgresql@18\n")
    # and that formula is where the lookup looks: installed, it is found
    fake_postgres(tmp_path / "nowhere/bin")
    fake_brew(tmp_path, "postgresql@18", tmp_path / "nowhere")
    assert run_bootstrap("have initdb", tmp_path).returncode == 0


def test_minimum_python_is_compared_by_number(tmp_path):
    shown = run_bootstrap("for v in 3.9.6 3.10.0 3.13.1 4.0.0; do "
                          "version_ok $v && echo yes || echo no; done", tmp_path)
    assert shown.stdout.split() == ["no", "yes", "yes", "yes"], shown.stderr


def test_too_old_python3_names_how_to_pick_another(tmp_path):
    fake_program(tmp_path / "bin/python3", 'echo "3.9.6 /Library/Developer/CommandLineTools"')
    fake_program(tmp_path / "bin/python3.12", 'echo "3.12.4 /opt/homebrew/python"')
    shown = run_bootstrap("asked_python", tmp_path)
    assert shown.returncode == 1
    assert "python3 is Python 3.9.6; this project needs Python 3.10 or newer" in shown.stderr
    assert "PYTHON=python3.12 " in shown.stderr


def test_a_venv_without_pip_is_rebuilt(tmp_path):
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")],
                   check=True)
    shown = run_bootstrap(f"venv_problem {tmp_path / 'venv'}", tmp_path)
    assert shown.stdout.startswith(".venv has no pip"), shown.stdout + shown.stderr


def test_a_healthy_venv_is_kept_unless_another_python_is_asked_for(tmp_path):
    venv = ROOT / ".venv"
    kept = run_bootstrap(f"venv_problem {venv}", tmp_path)
    assert (kept.stdout, kept.returncode) == ("", 0), kept.stderr
    other = run_bootstrap(f"venv_problem {venv} '3.99.0 /elsewhere'", tmp_path,
                          PYTHON="python3.99")
    assert other.stdout.startswith(".venv was built by Python 3."), other.stderr
    assert "not by python3.99" in other.stdout


def test_a_venv_with_too_old_a_python_is_rebuilt(tmp_path):
    fake_program(tmp_path / "venv/bin/python", 'echo "3.9.6 /usr"')
    shown = run_bootstrap(f"venv_problem {tmp_path / 'venv'}", tmp_path)
    assert shown.stdout == ".venv has Python 3.9.6, older than 3.10\n"


FAKE_ULIMIT = """
SOFT={soft}; HARD={hard}
ulimit() {{  # the builtin, as a kernel that accepts at most {most} would answer
  case "$*" in
    -Sn) echo $SOFT ;; -Hn) echo $HARD ;;
    "-Sn "*) [ "$2" -le {most} ] && SOFT=$2 ;;
  esac
}}
raise_open_files_limit
"""


def test_open_files_limit_is_raised_finitely_under_an_unlimited_hard_limit(tmp_path):
    fake_program(tmp_path / "bin/sysctl", "echo 24576")  # macOS's kern.maxfilesperproc
    shown = run_bootstrap(FAKE_ULIMIT.format(soft=256, hard="unlimited", most=24576),
                          tmp_path)
    assert shown.stderr == "==> open-files limit raised from 256 to 24576\n"


def test_open_files_limit_goes_up_to_a_finite_hard_limit(tmp_path):
    shown = run_bootstrap(FAKE_ULIMIT.format(soft=1024, hard=4096, most=4096), tmp_path)
    assert shown.stderr == "==> open-files limit raised from 1024 to 4096\n"


def test_open_files_limit_refused_is_reported_as_refused(tmp_path):
    shown = run_bootstrap(FAKE_ULIMIT.format(soft=256, hard="unlimited", most=0), tmp_path)
    assert shown.stderr == ("==> open-files limit stays at 256: raising it to 65536 was "
                            "refused (hard limit: unlimited)\n")


def test_apt_installs_skip_recommends_and_docker_compose_is_not_installed():
    bootstrap = (ROOT / "scripts/bootstrap.sh").read_text()
    installs = [line for line in bootstrap.splitlines() if "apt-get install -y" in line]
    # the flag on the same line as the install, where a reader of either sees it
    assert len(installs) == 2 and all("--no-install-recommends" in line for line in installs)
    assert "docker-compose" not in (ROOT / "run_tests.sh").read_text()


def test_a_program_only_a_test_needs_is_named_not_required(tmp_path):
    fake_brew(tmp_path, "none", tmp_path / "nowhere")
    shown = run_bootstrap("can_apt() { false; }; offer_system_packages no-such-linter; "
                          "echo went on", tmp_path)
    assert shown.stdout == "went on\n", shown.stderr
    assert "no no-such-linter: the tests that need it will skip" in shown.stderr


def test_apachebench_is_offered_by_its_package_names(tmp_path):
    """ab ships in no package called ab: Debian's apache2-utils, Homebrew's httpd."""
    shown = run_bootstrap("apt_package ab; brew_package ab", tmp_path)
    assert shown.stdout.split() == ["apache2-utils", "httpd"], shown.stderr
    assert "offer_system_packages shellcheck ab " in (ROOT / "run_tests.sh").read_text()


OURS = "#!/bin/sh\nexit 101\n"  # Debian's "do not start services now"
FAKE_APT_GET = """
case "$*" in *update*) exit 0 ;; esac
cat "$POLICY_RC_D" > {during}  # what a package's start-up would have asked
{then}"""


def apt_install_ending(tmp_path, then, machines_own):
    """apt_install with apt-get faked to end as `then` says; (policy-rc.d during the install,
    policy-rc.d after it or None, what is left beside it)."""
    policy, during = tmp_path / "sbin/policy-rc.d", tmp_path / "during"
    policy.parent.mkdir()
    if machines_own:
        policy.write_text(machines_own)
    fake_program(tmp_path / "bin/apt-get", FAKE_APT_GET.format(during=during, then=then))
    run_bootstrap("apt_install wrk", tmp_path, POLICY_RC_D=str(policy))
    return (during.read_text(), policy.exists() and policy.read_text(),
            sorted(path.name for path in policy.parent.iterdir() if path != policy))


@pytest.mark.parametrize("then", ["exit 0", "exit 100", "kill -KILL $$"],
                         ids=["installed", "failed", "killed"])
@pytest.mark.parametrize("machines_own", [None, "#!/bin/sh\nexit 0\n"], ids=["none", "own"])
def test_apt_install_leaves_policy_rc_d_as_it_found_it(tmp_path, then, machines_own):
    during, after, beside = apt_install_ending(tmp_path, then, machines_own)
    assert (during, after, beside) == (OURS, machines_own or False, [])


def test_ctrl_c_during_apt_get_install_leaves_no_policy_rc_d(tmp_path):
    policy, started = tmp_path / "sbin/policy-rc.d", tmp_path / "started"
    policy.parent.mkdir()
    # exec: the stub becomes the sleep, which Ctrl-C ends at once (a shell waits it out)
    fake_program(tmp_path / "bin/apt-get", f"touch {started}; exec sleep 60")
    env = {"PATH": f"{tmp_path / 'bin'}:{BASE_PATH}", "POLICY_RC_D": str(policy)}
    # run_tests.sh runs pytest as a background job, which ignores SIGINT, and so would the
    # stub: give this shell the terminal's default back
    shell = subprocess.Popen(["bash", "-c", "set -euo pipefail; . scripts/bootstrap.sh; "
                              "APT_UPDATED=1; apt_install wrk"], cwd=ROOT, env=env,
                             start_new_session=True, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert wait_until(started.exists, 60), "the fake apt-get never started"
        assert policy.read_text() == OURS
        os.killpg(shell.pid, signal.SIGINT)  # what the terminal sends on Ctrl-C
        shell.communicate(timeout=60)
    finally:
        if shell.poll() is None:
            os.killpg(shell.pid, signal.SIGKILL)
    assert list(policy.parent.iterdir()) == []
