#!/usr/bin/env bash
# The main job: sync_server.py against async_server.py under wrk, on equal terms.
set -euo pipefail
cd "$(dirname "$0")"

# -h or --help anywhere on the line: help and nothing else, before any set-up or service.
# --quick: its first line says what it is, in bench/report/reading.py's SMOKE_TEST words, and so
# does its last once it has run (after a failure, the last line is the error's).
SMOKE=""
for arg in "$@"; do
  case "$arg" in
    -h|--help)  # stdlib only: no set-up needed for help
      "${PYTHON:-python3}" -m bench --help
      printf '\nPYTHON=python3.12 %s builds .venv with that interpreter (3.10 or newer).\n' "$0"
      exit 0 ;;
    --quick)
      SMOKE="--quick is a smoke test: checks that everything runs; its figures are not"
      SMOKE="$SMOKE a measurement" ;;
  esac
done

# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh
smoke_line() { if [ -n "$SMOKE" ]; then say "$SMOKE"; fi; }
smoke_line
# a second Ctrl-C or SIGTERM while stopping must not cut the stopping short (services left up)
trap 'status=$?; trap "" INT TERM; stop_child; stop_services; [ "$status" != 0 ] || smoke_line' \
  EXIT
trap 'exit 130' INT  # the codes a shell reports for a command these signals end
trap 'exit 143' TERM

ensure_system_packages wrk
ensure_venv
start_services
raise_open_files_limit  # a file descriptor per connection, for wrk and the sync server
run_in_background "$PY" -m bench "$@"  # Ctrl-C and SIGTERM stop it (and its servers) at once
