#!/usr/bin/env bash
# Sourced by the other scripts: make .venv (once) with the Python minor version
# the function is deployed on, and install the development requirements into it
# when requirements*.txt differ from what was last installed there (remove
# .venv/requirements.cksum to install them again anyway).
#
# The deployed runtime is python313 (deploy.sh's --runtime default), so the
# tests and local runs use Python 3.13 too: a difference between the tested and
# the deployed interpreter is a difference nobody has tested.
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON_MINOR="3.13"
# EVENTS_VENV moves the virtual environment (a name of its own: a generic VENV
# inherited from the shell must never decide what is recreated below).
VENV="${EVENTS_VENV:-${PROJECT_ROOT}/.venv}"

find_python() {
  # An explicit PYTHON wins; then python3.13 on PATH; then pyenv's installs.
  if [ -n "${PYTHON:-}" ]; then
    printf '%s\n' "${PYTHON}"
    return 0
  fi
  # (A pyenv shim is on PATH even when that version is not selected: run it to be sure.)
  if "python${PYTHON_MINOR}" -c '' >/dev/null 2>&1; then
    command -v "python${PYTHON_MINOR}"
    return 0
  fi
  local candidate
  for candidate in "${PYENV_ROOT:-${HOME}/.pyenv}"/versions/"${PYTHON_MINOR}".*/bin/python"${PYTHON_MINOR}"; do
    if [ -x "${candidate}" ]; then
      printf '%s\n' "${candidate}"
      return 0
    fi
  done
  return 1
}

venv_minor() {
  "${VENV}/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null || true
}

if [ "$(venv_minor)" != "${PYTHON_MINOR}" ]; then
  if ! PYTHON_BIN="$(find_python)"; then
    cat >&2 <<EOF
error: Python ${PYTHON_MINOR} is needed (the function is deployed on python313) and was not found.
Install it, then run this again; for example:
  pyenv install ${PYTHON_MINOR}           # with pyenv
  apt-get install python${PYTHON_MINOR} python${PYTHON_MINOR}-venv   # on a Debian/Ubuntu release that ships it
or point PYTHON at a Python ${PYTHON_MINOR} interpreter: PYTHON=/path/to/python${PYTHON_MINOR} $0
EOF
    exit 1
  fi
  if [ -e "${VENV}" ]; then
    # Only a virtual environment is ever removed, never a folder that merely has its name.
    [ -f "${VENV}/pyvenv.cfg" ] || { echo "error: ${VENV} exists and is not a virtual environment" >&2; exit 1; }
    echo "recreating ${VENV} with Python ${PYTHON_MINOR} (it has Python $(venv_minor))" >&2
    rm -rf "${VENV}"
  else
    echo "creating ${VENV} with ${PYTHON_BIN}" >&2
  fi
  "${PYTHON_BIN}" -m venv "${VENV}"
fi
# cksum is in POSIX (Linux and macOS alike) and enough to notice an edited requirements file.
installed_stamp="${VENV}/requirements.cksum"
wanted="$(cd "${PROJECT_ROOT}" && cksum requirements*.txt)"
if [ "$(cat "${installed_stamp}" 2>/dev/null || true)" != "${wanted}" ]; then
  # pip installs uv (pinned in requirements-dev.txt), and uv the rest: the same pinned wheels in
  # a fifth of pip's time (docs/decisions.md). uv reads its own index settings (UV_INDEX_URL,
  # uv.toml), not pip.conf. Modules are compiled on their first import, as with pip --no-compile.
  "${VENV}/bin/python" -m pip install --quiet --disable-pip-version-check \
    "$(grep -E '^uv==' "${PROJECT_ROOT}/requirements-dev.txt")"
  "${VENV}/bin/uv" pip install --quiet --python "${VENV}/bin/python" -r "${PROJECT_ROOT}/requirements-dev.txt"
  printf '%s\n' "${wanted}" >"${installed_stamp}"
fi
