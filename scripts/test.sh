#!/usr/bin/env bash
# The whole test suite, from a clean checkout: makes .venv with every extra if needed
# (scripts/setup.sh, the README's set-up command too, so a set-up checkout is not
# installed again), then runs ruff, mypy --strict and pytest.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The ssh tests (tests/test_ssh.py) run a real OpenSSH server; install it when it is
# missing and we may (root, apt). Without it those tests skip and say how to enable them.
if [ ! -x /usr/sbin/sshd ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing openssh-server and openssh-client for the ssh tests"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client; } \
    >/dev/null 2>&1 || echo "could not install openssh-server: the ssh tests will skip"
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
