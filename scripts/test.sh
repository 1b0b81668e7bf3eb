#!/usr/bin/env bash
# Run the whole test suite against PostgreSQL servers the tests start themselves.
#
# usage: scripts/test.sh [pytest arguments...]
#
# Creates .venv and installs requirements-dev.txt on first use. The TLS tests
# need a PostgreSQL built with OpenSSL: Debian's (the embedded wheel has none).
# When it is missing and this runs as root, it is installed with apt-get.
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,8s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac

# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
    echo "installing Debian's PostgreSQL server for the TLS tests" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "warning: no Debian PostgreSQL server; TLS tests will not run (apt-get install postgresql)" >&2
  fi
fi

cd "${PROJECT_ROOT}"
exec "${VENV}/bin/python" -m pytest "$@"
