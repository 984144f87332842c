#!/usr/bin/env bash
# Make .venv in this checkout with pathos (editable) and every extra: Dask, and the dev
# tools the tests use (pytest, ruff, mypy, numpy, psutil). Usage: bash scripts/setup.sh
#
# README's set-up command and scripts/test.sh both run this script, so they agree: it
# installs only when .venv is missing or pyproject.toml changed since the last install
# (the stamp, .venv/.pathos-installed, is a copy of the pyproject.toml it installed).
# PYTHON picks the interpreter that makes the venv (default python3).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.pathos-installed
if [ -x .venv/bin/python ] && [ -f "$stamp" ] && cmp -s pyproject.toml "$stamp"; then
  exit 0
fi
echo "setting up .venv: pathos from this checkout, with its extras and dev tools (once)..." >&2
"$PY" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e ".[all]"
cp pyproject.toml "$stamp"
