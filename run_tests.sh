#!/usr/bin/env bash
# Run the test suite against real Postgres and Redis, setting up whatever is missing.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./run_tests.sh [--all] [PYTEST_ARGS...]

The fast tier by default (about 2 minutes): every test but those marked slow, which run
the benchmark, nested pytest sessions, perf or Chromium, or stop a service. --all runs
them too (what CI runs), and the differential test with 2,000 generated requests, not 300.
Naming test files or folders runs all of their tests: ./run_tests.sh tests/test_bench.py

Creates .venv with the pinned requirements, installs missing system programs
(redis-server, wrk, PostgreSQL, shellcheck, ab) with apt-get when run as root on Debian/Ubuntu,
starts a throwaway Postgres and Redis on free ports, applies schema.sql, runs
pytest, and stops everything it started, also on failure or Ctrl-C.

PYTHON=python3.12 ./run_tests.sh   build .venv with that interpreter (Python 3.10
                                   or newer; default python3). A .venv without pip,
                                   too old, or built by another interpreter than
                                   PYTHON is rebuilt.
Set DATABASE_URL and REDIS_URL to use services you already run instead.
Other arguments go to pytest, e.g. ./run_tests.sh -k parity -x
USAGE
}
tier=(-m "not slow")  # the fast tier, unless --all or test paths are given
pytest_args=()
for arg in "$@"; do  # -h or --help anywhere: help and nothing else, before any set-up
  case "$arg" in
    -h|--help) usage; exit 0 ;;
    --all) tier=(); export HYPOTHESIS_EXAMPLES="${HYPOTHESIS_EXAMPLES:-2000}" ;;
    *) pytest_args+=("$arg"); if [ -e "$(dirname "$0")/${arg%%::*}" ]; then tier=(); fi ;;
  esac
done

cd "$(dirname "$0")"
# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh
trap 'stop_child; stop_services' EXIT
trap 'exit 130' INT  # the codes a shell reports for a command these signals end
trap 'exit 143' TERM

ensure_system_packages wrk  # for the benchmark's smoke test
# tests/test_report.py opens report.html in real headless Chromium; it skips where there is none
if can_apt; then ensure_system_packages chromium; fi
ensure_venv
start_services
offer_system_packages shellcheck ab  # for tests/test_lint.py; ApacheBench for test_clients.py
"$PY" scripts/reset_db.py
say "running pytest"
# Ctrl-C and SIGTERM stop it (and its servers) at once; "${a[@]+...}": bash 3.2's set -u
run_in_background "$PY" -m pytest ${tier[@]+"${tier[@]}"} ${pytest_args[@]+"${pytest_args[@]}"}
