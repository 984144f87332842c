#!/usr/bin/env bash
# A long run of the chaos suite (tests/_chaos.py) with a printed seed.
# Usage: bash scripts/soak.sh [--minutes 30] [--seed N] [--kinds thread,fork,...] [--replay SEED --kinds KIND]
# Needs .venv (bash scripts/test.sh makes it). Prints operations, seeds, failures and wall time at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m tests.chaos_soak "$@"
