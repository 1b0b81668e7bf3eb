#!/usr/bin/env bash
# Run SQLAlchemy's dialect compliance suite (sqlalchemy.testing.suite, shipped with
# the installed SQLAlchemy) for stock postgresql+pg8000 and this project's
# postgresql+pg8000_cockroachdb, on one PostgreSQL server it starts itself, and
# print the two results side by side (docs/dialect-compliance.md).
#
# usage: scripts/dialect-compliance.sh                       both dialects, the whole suite
#        scripts/dialect-compliance.sh [options] [-- PYTEST_ARGS...]
#          --only DRIVERNAME   one dialect only
#          --output-dir DIR    logs, JUnit XML and results.json (default .local/dialect-compliance)
#          -- -k ExceptionTest pytest arguments for both runs
#
# Exit status: 0 same outcome for every test and every failure listed with its reason in
# devtools/dialect_compliance/expected.txt, 1 an outcome differs or a failure is not
# listed, 2 a run failed.
# Takes a few minutes on 2 cores; not part of scripts/test.sh.
set -euo pipefail

case "${1:-}" in
  -h|--help) sed -n '2,16s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac

# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

cd "${PROJECT_ROOT}"
exec "${VENV}/bin/python" -m devtools.dialect_compliance "$@"
