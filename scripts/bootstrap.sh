# shellcheck shell=bash
# Sourced by run_tests.sh and run_bench.sh: what both need before they can run anything.
#   ensure_system_packages CMD...  install missing programs (apt-get as root), or say how
#   ensure_venv                    .venv with the pinned requirements.txt
#   start_services / stop_services throwaway Postgres and Redis, unless DATABASE_URL and
#                                  REDIS_URL already point somewhere
# Portable to bash 3.2 (macOS): no associative arrays, no mapfile.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
STATE_DIR=""
APT_UPDATED=""

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

have() {
  case "$1" in
    initdb) command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

apt_package() { case "$1" in initdb) echo postgresql ;; *) echo "$1" ;; esac; }
brew_package() {
  case "$1" in initdb) echo postgresql ;; redis-server) echo redis ;; *) echo "$1" ;; esac
}

ensure_system_packages() {
  local cmd apt_missing="" brew_missing=""
  for cmd in "$@"; do
    if ! have "$cmd"; then
      apt_missing="$apt_missing $(apt_package "$cmd")"
      brew_missing="$brew_missing $(brew_package "$cmd")"
    fi
  done
  [ -z "$apt_missing" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    if [ -z "$APT_UPDATED" ]; then
      say "apt-get update"
      apt-get update -qq >/dev/null
      APT_UPDATED=1
    fi
    say "installing$apt_missing with apt-get"
    # policy-rc.d exit 101: install the programs without starting them as system services
    local policy=/usr/sbin/policy-rc.d added_policy=""
    if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' > "$policy"; chmod +x "$policy"; added_policy=1; fi
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $apt_missing >/dev/null || {
      [ -n "$added_policy" ] && rm -f "$policy"; die "apt-get install$apt_missing failed"; }
    [ -n "$added_policy" ] && rm -f "$policy"
    return 0
  fi
  printf 'error: missing programs:%s\n' "$apt_missing" >&2
  if command -v brew >/dev/null 2>&1; then
    printf 'Install them with:\n  brew install%s\n' "$brew_missing" >&2
  else
    printf 'Install them with:\n  sudo apt-get install -y%s\n' "$apt_missing" >&2
  fi
  exit 1
}

ensure_venv() {
  local want
  want=$(cksum < "$ROOT/requirements.txt")
  if [ ! -x "$PY" ]; then
    say "creating .venv"
    python3 -m venv "$VENV" || die "python3 -m venv failed (on Debian/Ubuntu: apt-get install python3-venv)"
  fi
  if [ "$(cat "$VENV/.requirements-cksum" 2>/dev/null)" != "$want" ]; then
    say "installing the pinned Python packages into .venv"
    "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements.txt" \
      || die "pip install -r requirements.txt failed"
    echo "$want" > "$VENV/.requirements-cksum"
  fi
}

start_services() {
  local flags="" line
  if [ -n "${DATABASE_URL:-}" ]; then flags="$flags --no-postgres"; else ensure_system_packages initdb; fi
  if [ -n "${REDIS_URL:-}" ]; then flags="$flags --no-redis"; else ensure_system_packages redis-server; fi
  if [ -n "${DATABASE_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
    say "using DATABASE_URL and REDIS_URL from the environment"
    return 0
  fi
  STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/todo-services.XXXXXX")
  say "starting throwaway Postgres and/or Redis in $STATE_DIR"
  # shellcheck disable=SC2086
  line=$("$PY" "$ROOT/scripts/services.py" up "$STATE_DIR" $flags) || die "could not start the services"
  while IFS= read -r line_item; do
    [ -n "$line_item" ] && export "${line_item?}"
  done <<EOF2
$line
EOF2
  say "DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL"
}

stop_services() {
  if [ -n "$STATE_DIR" ] && [ -d "$STATE_DIR" ]; then
    say "stopping the throwaway services"
    "$PY" "$ROOT/scripts/services.py" down "$STATE_DIR" || true
    rm -rf "$STATE_DIR"
    STATE_DIR=""
  fi
}
