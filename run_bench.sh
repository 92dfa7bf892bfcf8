#!/usr/bin/env bash
# The main job: sync_server.py against async_server.py under wrk, on equal terms.
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
  -h|--help)  # stdlib only: no set-up needed for help
    "${PYTHON:-python3}" bench/run.py --help
    printf '\nPYTHON=python3.12 %s builds .venv with that interpreter (3.10 or newer).\n' "$0"
    exit 0 ;;
esac

# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh
SERVE_PID=""
# --serve waits in the background so that Ctrl-C and SIGTERM reach this shell's traps at once
stop_serving() {
  if [ -n "$SERVE_PID" ]; then
    kill -TERM "$SERVE_PID" 2>/dev/null || true
    wait "$SERVE_PID" || true
  fi
}
# a second Ctrl-C or SIGTERM while stopping must not cut the stopping short (services left up)
trap 'trap "" INT TERM; stop_serving; stop_services' EXIT
trap 'exit 130' INT TERM

ensure_system_packages wrk
ensure_venv
start_services
raise_open_files_limit  # a file descriptor per connection, for wrk and the sync server
case " $* " in
  *" --serve "*) "$PY" bench/run.py "$@" & SERVE_PID=$!; wait "$SERVE_PID"; SERVE_PID="" ;;
  *) "$PY" bench/run.py "$@" ;;
esac
