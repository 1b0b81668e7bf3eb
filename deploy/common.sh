# shellcheck shell=bash
# Helpers that deploy.sh and aws/deploy.sh share, sourced by both (not run on its own).

usage() { sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }
die() { printf '%s: %s\n' "${0##*/}" "$*" >&2; exit 2; }
step() { printf '\n== %s\n' "$*"; }

# Read the whole number in variable $1 as decimal (a leading 0 is not octal: 010 is ten) and
# check it is from $3 to $4; $2 names the setting in the message.
decimal() {
  local value="${!1}" digits
  [[ "${value}" =~ ^[0-9]+$ ]] || die "$2 must be a whole number, got '${value}'"
  digits="${value#"${value%%[!0]*}"}"
  if [ "${#digits}" -gt 9 ] || [ "$((10#${value}))" -lt "$3" ] || [ "$((10#${value}))" -gt "$4" ]; then
    die "$2 must be from $3 to $4, got ${value}"
  fi
  printf -v "$1" '%d' "$((10#${value}))"
}

# PYTHON, the interpreter that runs the function's own checks: as set, else the project's
# .venv under $1 (or EVENTS_VENV, as scripts/bootstrap.sh honours it), else python3.
find_python() {
  PYTHON="${PYTHON:-}"
  if [ -z "${PYTHON}" ]; then
    local venv="${EVENTS_VENV:-$1/.venv}"
    if [ -x "${venv}/bin/python" ]; then PYTHON="${venv}/bin/python"; else PYTHON=python3; fi
  fi
  command -v "${PYTHON}" >/dev/null || die "python3 is needed (set PYTHON)"
}

# The DSN from DATABASE_URL, or from standard input's first line with DSN_FROM_STDIN=true.
read_dsn() {
  DSN="${DATABASE_URL:-}"
  if [ "${DSN_FROM_STDIN}" = true ]; then
    IFS= read -r DSN || [ -n "${DSN}" ] || die "--dsn-stdin: nothing on standard input"
    [ -n "${DSN}" ] || die "--dsn-stdin: the first line of standard input is empty"
  fi
  # The DSN reaches the cloud's CLI and Python on stdin only, never through their environment.
  export -n DATABASE_URL 2>/dev/null || true
}

# Waits for retries: sleep_ms N, and BACKOFF_MS doubled up to 16 x DEPLOY_BACKOFF_MS.
sleep_ms() { sleep "$(($1 / 1000)).$(printf '%03d' "$(($1 % 1000))")"; }
next_backoff() { BACKOFF_MS=$((BACKOFF_MS * 2 > DEPLOY_BACKOFF_MS * 16 ? DEPLOY_BACKOFF_MS * 16 : BACKOFF_MS * 2)); }
