#!/usr/bin/env bash
# The whole test suite, from a clean checkout: makes .venv with every extra if needed,
# then runs ruff, mypy --strict and pytest. Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
stamp=.venv/.pathos-installed
if [ ! -x .venv/bin/python ] || [ ! -f "$stamp" ] || ! cmp -s pyproject.toml "$stamp"; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[all]"
  cp pyproject.toml "$stamp"
fi
.venv/bin/python -m ruff check .
.venv/bin/python -m mypy
set +e
.venv/bin/python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests"
  exit 0
fi
exit "$status"
