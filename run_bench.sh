#!/usr/bin/env bash
# The main job: sync_server.py against async_server.py under wrk, on equal terms.
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
  -h|--help) exec python3 bench/run.py --help ;;  # stdlib only: no set-up needed for help
esac

# shellcheck source=scripts/bootstrap.sh
. scripts/bootstrap.sh
trap stop_services EXIT
trap 'exit 130' INT TERM

ensure_system_packages wrk
ensure_venv
start_services
# wrk and a thread-per-connection server need a file descriptor per connection
ulimit -n "$(ulimit -Hn)" 2>/dev/null || say "could not raise the open-files limit ($(ulimit -n))"
"$PY" bench/run.py "$@"
