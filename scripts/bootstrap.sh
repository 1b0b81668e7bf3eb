#!/usr/bin/env bash
# Sourced by the other scripts: make .venv (once) and install the development
# requirements into it (fast when they are already there).
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
VENV="${VENV:-${PROJECT_ROOT}/.venv}"

if [ ! -x "${VENV}/bin/python" ]; then
  echo "creating ${VENV}" >&2
  "${PYTHON}" -m venv "${VENV}"
fi
"${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
  -r "${PROJECT_ROOT}/requirements-dev.txt"
