#!/usr/bin/env bash
# Run the test suite against real Postgres and Redis, setting up whatever is missing.
set -euo pipefail

usage() {
  cat <<'USAGE'
Usage: ./run_tests.sh [PYTEST_ARGS...]

Creates .venv with the pinned requirements, installs missing system programs
(redis-server, wrk, PostgreSQL) with apt-get when run as root on Debian/Ubuntu,
starts a throwaway Postgres and Redis on free ports, applies schema.sql, runs
pytest, and stops everything it started, also on failure or Ctrl-C.

PYTHON=python3.12 ./run_tests.sh   build .venv with that interpreter (Python 3.10
                                   or newer; default python3). A .venv without pip,
                                   too old, or built by another interpreter than
                                   PYTHON is rebuilt.
Set DATABASE_URL and REDIS_URL to use services you already run instead.
Extra arguments go to pytest, e.g. ./run_tests.sh -k parity -x
USAGE
}
case "${1:-}" in -h|--help) usage; exit 0 ;; esac

cd "$(dirname "$0")"
# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh
trap stop_services EXIT
trap 'exit 130' INT TERM

ensure_system_packages wrk  # for the benchmark's smoke test
# tests/test_report.py opens report.html in real headless Chromium; it skips where there is none
if can_apt; then ensure_system_packages chromium; fi
ensure_venv
start_services
"$PY" scripts/reset_db.py
say "running pytest"
"$PY" -m pytest "$@"
