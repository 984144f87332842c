"""The README's install lines: they install this project, and its two commands agree.

The set-up command (README command 1) and the test command (``scripts/test.sh``) must
share one install and one stamp, so that the first test run after set-up installs
nothing. Checked with a stand-in ``python3`` that records what it is asked to do, so no
real install runs here (the real one is the fresh-clone check).
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()

FAKE_PYTHON = """#!/usr/bin/env bash
# Records each call; makes a venv whose python is this same recorder.
echo "$*" >> "$FAKE_LOG"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then
  mkdir -p "$3/bin" && cp "$FAKE_SELF" "$3/bin/python" && cp "$FAKE_SELF" "$3/bin/pip"
fi
exit 0
"""


def block_after(title: str) -> str:
    """The first ```bash block after the bold ``title`` in the README, as one line."""
    start = README.index(f"**{title}**")
    match = re.search(r"```bash\n(.*?)```", README[start:], re.S)
    assert match, title
    return match.group(1).strip()


def test_readme_has_a_user_install_and_the_two_commands() -> None:
    install = block_after("Install")
    assert install.startswith("python3 -m pip install .") and "[dev" not in install and "all]" not in install
    setup, tests = block_after("Set up and run the quickstart"), block_after("Run the whole test suite")
    assert "\n" not in setup and "scripts/setup.sh" in setup and "examples/quickstart.py" in setup
    assert tests == "bash scripts/test.sh"
    assert "bash scripts/setup.sh" in (ROOT / "scripts" / "test.sh").read_text()  # one install, one stamp


@pytest.fixture
def checkout(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A copy of the files the two commands use, and an environment whose python3 records."""
    work = tmp_path / "clone"
    for name in ("scripts/setup.sh", "scripts/test.sh", "pyproject.toml", "examples/quickstart.py"):
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, work / name)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "python3"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_LOG=str(tmp_path / "log"))
    env["FAKE_SELF"] = str(fake)
    env.pop("PYTHON", None)
    return work, env


def run_logged(command: str, work: Path, env: dict[str, str]) -> list[str]:
    """Run a README command in ``work``; the calls the stand-in python3 recorded."""
    log = Path(env["FAKE_LOG"])
    log.write_text("")
    out = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    return log.read_text().splitlines()


def test_set_up_then_test_installs_once(checkout: tuple[Path, dict[str, str]]) -> None:
    work, env = checkout
    first = run_logged(block_after("Set up and run the quickstart"), work, env)
    assert "-m venv .venv" in first and any("install" in call and ".[all]" in call for call in first), first
    assert first[-1] == "examples/quickstart.py"
    second = run_logged(block_after("Run the whole test suite"), work, env)
    assert not any("pip" in call or "venv" in call for call in second), second  # no reinstall
    assert [call.split()[1] for call in second] == ["ruff", "mypy", "pytest"]


def test_test_command_installs_when_pyproject_changes(checkout: tuple[Path, dict[str, str]]) -> None:
    work, env = checkout
    run_logged("bash scripts/test.sh", work, env)  # a first run with no .venv installs
    with open(work / "pyproject.toml", "a") as f:
        f.write("\n# a new dependency\n")
    again = run_logged("bash scripts/test.sh", work, env)
    assert '-m pip install --quiet -e .[all]' in again


REGISTRY_PATHOS = re.compile(r"pip install\b[^\n`]*?(?<![\w.])[\"']?pathos(\[|[=<>~ ]|[\"']|$)", re.M)


def test_no_install_line_sends_users_to_the_registry_pathos() -> None:
    # The registry's "pathos" is pathos 0.3.5: every line must install this checkout.
    texts = [ROOT / "README.md", *ROOT.glob("docs/*.md"), *ROOT.glob("examples/*.py"), *ROOT.glob("src/**/*.py")]
    offenders = [f"{p.relative_to(ROOT)}: {m.group(0)}" for p in texts for m in REGISTRY_PATHOS.finditer(p.read_text())]
    assert offenders == []
    assert REGISTRY_PATHOS.search('pip install "pathos[dask]"')  # the pattern does catch the old line
    assert not REGISTRY_PATHOS.search('pip install -e ".[dask]"')


def test_the_dask_install_hint_installs_the_extra_we_declare() -> None:
    from pathos._backends._dask_cluster import DASK_REQUIREMENT, INSTALL_HINT

    extra = re.search(r'^dask = \["([^"]+)"\]', (ROOT / "pyproject.toml").read_text(), re.M)
    assert extra and extra.group(1) == DASK_REQUIREMENT
    assert f'-m pip install "{DASK_REQUIREMENT}"' in INSTALL_HINT and "pathos[" not in INSTALL_HINT
