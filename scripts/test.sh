#!/usr/bin/env bash
# The whole test suite, from a clean checkout: makes .venv with every extra if needed
# (scripts/setup.sh, the README's set-up command too, so a set-up checkout is not
# installed again), then runs ruff, mypy --strict and pytest.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
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
