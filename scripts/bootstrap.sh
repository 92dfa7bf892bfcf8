# shellcheck shell=bash
# Sourced by run_tests.sh and run_bench.sh: what both need before they can run anything.
#   ensure_system_packages CMD...  install missing programs (apt-get as root), or say how
#   offer_system_packages CMD...   the same for programs only a test needs: never stops
#   ensure_venv                    .venv with the pinned requirements(-dev).txt, built by $PYTHON
#   start_services / stop_services throwaway Postgres and Redis, unless DATABASE_URL and
#                                  REDIS_URL already point somewhere
#   raise_open_files_limit         as many open files as this shell may have, said truthfully
#   run_in_background / stop_child the main command, so that INT and TERM are handled at once
# Portable to bash 3.2 (macOS): no associative arrays, no mapfile, no ${x,,}.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
# The oldest Python the pinned packages install on: aiohttp 3.14.5, redis 8.1.0, pytest 9.2.0
# and psycopg2-binary 2.9.13 all declare Requires-Python >= 3.10.
MIN_PYTHON=3.10
STATE_DIR=""
APT_UPDATED=""

say() { printf '==> %s\n' "$*" | fold -s -w 100 >&2; }  # within an ordinary terminal
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# Any Python that runs, for scripts/databases.py (standard library only) before .venv exists.
some_python() { if [ -x "$PY" ]; then echo "$PY"; else echo "${PYTHON:-python3}"; fi; }

# The folder initdb comes from: scripts/databases.py decides, so the check here and the
# program that later starts Postgres never disagree.
postgres_bin_dir() { "$(some_python)" "$ROOT/scripts/databases.py" postgres-bin 2>/dev/null; }

have() {
  case "$1" in
    initdb) postgres_bin_dir >/dev/null ;;
    *) command -v "$1" >/dev/null 2>&1 ;;
  esac
}

# ab (ApacheBench) comes with Apache's tools: Debian's apache2-utils, Homebrew's httpd.
apt_package() {
  case "$1" in initdb) echo postgresql ;; ab) echo apache2-utils ;; *) echo "$1" ;; esac
}
# Homebrew's `postgresql` is now postgresql@18 and keg-only; databases.py finds it there.
brew_package() {
  case "$1" in
    initdb) echo postgresql@18 ;; redis-server) echo redis ;; ab) echo httpd ;; *) echo "$1" ;;
  esac
}

# Debian runs this before starting a service; ours exits 101, "not now", so that programs are
# installed without being started as system services. Tests point it elsewhere.
POLICY_RC_D=${POLICY_RC_D:-/usr/sbin/policy-rc.d}

# Put our policy-rc.d in place, setting the machine's own aside (beside it, where an admin
# sees it) to be restored.
hold_back_services() {
  local saved="$POLICY_RC_D.before-todo"
  # a saved one is the machine's own, set aside by a run killed outright (SIGKILL)
  if [ ! -e "$saved" ] && [ -e "$POLICY_RC_D" ]; then mv "$POLICY_RC_D" "$saved"; fi
  ADDED_POLICY=1
  printf '#!/bin/sh\nexit 101\n' > "$POLICY_RC_D" && chmod +x "$POLICY_RC_D"
}

# Undo hold_back_services, however far it got: the machine's own policy-rc.d back, or ours
# gone. Left behind, ours would keep Debian from starting any service installed later.
let_services_start() {
  local saved="$POLICY_RC_D.before-todo"
  if [ -e "$saved" ]; then mv -f "$saved" "$POLICY_RC_D"
  elif [ -n "${ADDED_POLICY:-}" ]; then rm -f "$POLICY_RC_D"; fi
}

# apt-get install PACKAGE... (waiting up to 5 min for another apt to finish) without
# Recommends (Debian's docker-compose would bring a Docker engine that way) and without
# starting any of them as a system service.
apt_install() {
  if [ -z "$APT_UPDATED" ]; then
    say "apt-get update"
    apt-get -o DPkg::Lock::Timeout=300 update -qq >/dev/null || die "apt-get update failed"
    APT_UPDATED=1
  fi
  say "installing $* with apt-get"
  # A subshell whose EXIT trap undoes hold_back_services on every way out: apt-get failing
  # or killed, Ctrl-C, SIGTERM (trapped to exit, so that the EXIT trap runs on them in any
  # bash, and the codes are a shell's for those signals).
  (
    trap let_services_start EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    hold_back_services &&
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=300 "$@" >/dev/null
  ) || die "apt-get install $* failed"
}

can_apt() { [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; }

# Programs only a test needs (shellcheck): installed as the others are where apt-get can, else
# named; the tests that need them skip saying why, rather than the suite refusing to run.
offer_system_packages() {
  local cmd
  for cmd in "$@"; do
    have "$cmd" && continue
    if can_apt && (apt_install "$(apt_package "$cmd")"); then continue; fi
    say "no $cmd: the tests that need it will skip (brew install $(brew_package "$cmd"))"
  done
}

ensure_system_packages() {
  local cmd missing="" apt_missing brew_missing=""
  apt_missing=()
  for cmd in "$@"; do
    if ! have "$cmd"; then
      missing="$missing $cmd"
      apt_missing+=("$(apt_package "$cmd")")
      brew_missing="$brew_missing $(brew_package "$cmd")"
    fi
  done
  [ -z "$missing" ] && return 0  # before "${apt_missing[@]}": bash < 4.4 calls empty unset
  if can_apt; then
    apt_install "${apt_missing[@]}"
    return 0
  fi
  printf 'error: missing programs:%s\n' "$missing" >&2
  if command -v brew >/dev/null 2>&1; then
    printf 'Install them with:\n  brew install%s\n' "$brew_missing" >&2
  else
    printf 'Install them with:\n  sudo apt-get install -y --no-install-recommends %s\n' \
      "${apt_missing[*]}" >&2
  fi
  exit 1
}

# "VERSION BASE_PREFIX" of an interpreter (3.12.4 /usr/local/...), nothing if it does not run.
# A venv's python reports the base_prefix of the interpreter that built it.
python_identity() {
  "$1" -c 'import os, sys
print("%d.%d.%d %s" % (sys.version_info[:3] + (os.path.realpath(sys.base_prefix),)))' \
    2>/dev/null
}

# True when VERSION (3.12.4) is MIN_PYTHON or newer.
version_ok() {
  local major minor rest
  major=${1%%.*}; rest=${1#*.}; minor=${rest%%.*}
  [ "$major" -gt "${MIN_PYTHON%%.*}" ] ||
    { [ "$major" -eq "${MIN_PYTHON%%.*}" ] && [ "$minor" -ge "${MIN_PYTHON#*.}" ]; }
}

# Interpreters on PATH that run and are new enough (a pyenv shim may do neither).
newer_pythons() {
  local found="" name identity
  for name in python3.14 python3.13 python3.12 python3.11 python3.10; do
    identity=$(python_identity "$name") && version_ok "${identity%% *}" &&
      found="$found $name"
  done
  echo "$found"
}

# The interpreter asked for ($PYTHON, else python3), checked: its identity on stdout.
asked_python() {
  local python=${PYTHON:-python3} identity others first
  command -v "$python" >/dev/null 2>&1 ||
    die "${PYTHON:+PYTHON=}$python: no such program (pick one with PYTHON=python3.12 $0)"
  identity=$(python_identity "$python") ||
    die "$python does not run: $("$python" -c pass 2>&1 | head -n 3)"
  if ! version_ok "${identity%% *}"; then
    others=$(newer_pythons)
    printf 'error: %s is Python %s; this project needs Python %s or newer\n' \
      "$python" "${identity%% *}" "$MIN_PYTHON" >&2
    printf '(the pinned aiohttp, redis-py, pytest and psycopg2-binary require it).\n' >&2
    if [ -n "$others" ]; then
      first=${others# }; first=${first%% *}  # the first name is the suggestion
      printf 'Found on PATH:%s. Pick one, e.g.:\n  PYTHON=%s %s\n' "$others" "$first" "$0" >&2
    else
      printf 'Install a newer one (brew install python@3.12, or apt-get install python3),\n' >&2
      printf 'then pick it with: PYTHON=python3.12 %s\n' "$0" >&2
    fi
    exit 1
  fi
  echo "$identity"
}

# Why VENV_DIR cannot be used as it is (one line), or nothing if it can.
# WANT is the identity of the interpreter asked for, or empty when any new-enough one will do.
venv_problem() {
  local dir=$1 want=${2:-} identity
  [ -e "$dir" ] || { echo "there is no .venv yet"; return 0; }
  identity=$(python_identity "$dir/bin/python") ||
    { echo ".venv has no working bin/python (its interpreter moved or was removed)"; return 0; }
  if ! version_ok "${identity%% *}"; then
    echo ".venv has Python ${identity%% *}, older than $MIN_PYTHON"; return 0
  fi
  if ! "$dir/bin/python" -m pip --version >/dev/null 2>&1; then
    echo ".venv has no pip (made with --without-pip, or where python3-venv was missing)"
    return 0
  fi
  if [ -n "$want" ] && [ "$identity" != "$want" ]; then
    echo ".venv was built by Python ${identity%% *} (${identity#* }), not by $PYTHON" \
      "(Python ${want%% *}, ${want#* })"
  fi
}

# python3 -m venv; on Debian/Ubuntu as root, install pythonX.Y-venv when ensurepip is missing.
make_venv() {
  local python=$1 version=$2 package
  package="python${version%.*}-venv"
  "$python" -m venv "$VENV" >/dev/null 2>&1 && return 0
  rm -rf "$VENV"
  if can_apt && ! "$python" -c 'import ensurepip' >/dev/null 2>&1; then
    apt_install "$package"
    "$python" -m venv "$VENV" && return 0
    rm -rf "$VENV"
  fi
  die "$python -m venv failed (on Debian/Ubuntu: apt-get install $package)"
}

ensure_venv() {
  local want identity problem stamp python=${PYTHON:-python3}
  want=$(cat "$ROOT/requirements.txt" "$ROOT/requirements-dev.txt" | cksum)
  identity=$(asked_python) || exit 1
  # Without PYTHON, any healthy .venv will do; with it, only one built by that interpreter.
  problem=$(venv_problem "$VENV" "${PYTHON:+$identity}")
  if [ -n "$problem" ]; then
    if [ -e "$VENV" ]; then say "rebuilding .venv: $problem"; rm -rf "$VENV"; fi
    say "creating .venv with $python (Python ${identity%% *})"
    make_venv "$python" "${identity%% *}"
    problem=$(venv_problem "$VENV" "$identity")
    [ -z "$problem" ] || die "the new $problem"
  fi
  stamp=$(cat "$VENV/.requirements-cksum" 2>/dev/null || true)
  if [ "$stamp" != "$want" ]; then
    say "installing the pinned Python packages into .venv (a minute or two the first time)"
    "$PY" -m pip install -q --disable-pip-version-check -r "$ROOT/requirements-dev.txt" \
      || die "pip install -r requirements-dev.txt failed"
    echo "$want" > "$VENV/.requirements-cksum"
  fi
}

start_services() {
  local flags line
  flags=()
  if [ -n "${DATABASE_URL:-}" ]; then
    flags+=(--no-postgres)
  else
    ensure_system_packages initdb
    say "PostgreSQL programs from $(postgres_bin_dir)"
  fi
  if [ -n "${REDIS_URL:-}" ]; then flags+=(--no-redis); else ensure_system_packages redis-server; fi
  if [ -n "${DATABASE_URL:-}" ] && [ -n "${REDIS_URL:-}" ]; then
    say "using DATABASE_URL and REDIS_URL from the environment"
    return 0
  fi
  STATE_DIR=$(mktemp -d "${TMPDIR:-/tmp}/todo-services.XXXXXX")
  say "starting throwaway Postgres and/or Redis in $STATE_DIR"
  # ${flags[@]+...}: nothing when flags is empty, which bash < 4.4 calls unset under set -u
  line=$("$PY" "$ROOT/scripts/databases.py" up "$STATE_DIR" ${flags[@]+"${flags[@]}"}) ||
    die "could not start the services"
  while IFS= read -r line_item; do
    [ -n "$line_item" ] && export "${line_item?}"
  done <<EOF2
$line
EOF2
  say "DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL"
}

CHILD_PID=""
# Run a command in the background and wait for it: a shell waiting on a foreground command
# runs its INT and TERM traps only when that command ends (a whole benchmark), while `wait`
# returns at once. stdin is passed on (a background command's would be /dev/null).
run_in_background() {
  local status=0
  "$@" <&0 &
  CHILD_PID=$!
  wait "$CHILD_PID" || status=$?
  CHILD_PID=""
  return "$status"
}

# For the EXIT trap: SIGTERM the command run_in_background waits on, and wait while it stops
# what it started (bench its servers and wrk, pytest its fixtures' servers).
stop_child() {
  if [ -n "$CHILD_PID" ]; then
    kill -TERM "$CHILD_PID" 2>/dev/null || true
    wait "$CHILD_PID" 2>/dev/null || true
    CHILD_PID=""
  fi
}

stop_services() {
  if [ -n "$STATE_DIR" ] && [ -d "$STATE_DIR" ]; then
    say "stopping the throwaway services"
    "$PY" "$ROOT/scripts/databases.py" down "$STATE_DIR" || true
    rm -rf "$STATE_DIR"
    STATE_DIR=""
  fi
}

# Where the hard limit is `unlimited` (macOS), the soft one cannot follow it: aim for this.
OPEN_FILES_WANTED=65536

# wrk and a thread-per-connection server need a file descriptor per connection: raise the
# soft open-files limit as far as the system allows and say where it ended up.
raise_open_files_limit() {
  local soft hard target tried=""
  soft=$(ulimit -Sn); hard=$(ulimit -Hn)
  if [ "$hard" = unlimited ]; then
    # macOS refuses more than kern.maxfilesperproc per process
    target="$OPEN_FILES_WANTED $(sysctl -n kern.maxfilesperproc 2>/dev/null || true) 10240"
  else
    target=$hard
  fi
  if [ "$soft" = unlimited ]; then say "open-files limit: unlimited"; return 0; fi
  for tried in $target; do
    if [ "$soft" -ge "$tried" ]; then say "open-files limit: $soft"; return 0; fi
    if ulimit -Sn "$tried" 2>/dev/null; then
      say "open-files limit raised from $soft to $(ulimit -Sn)"
      return 0
    fi
  done
  say "open-files limit stays at $soft: raising it to ${target%% *} was refused (hard limit: $hard)"
}
