"""The benchmark environment: ``benchmarks/.venv`` with our package (editable) and the
peers, and pathos 0.3.5 in a ``--target`` directory of its own.

pathos 0.3.5 has the same import name as ours, so it never lives in the venv's
site-packages: each measurement runs in a subprocess whose ``sys.path`` starts with
either ``src/`` or the target directory, never both.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = HERE / ".venv"
PEERS = HERE / ".peers"
PATHOS035 = PEERS / "pathos035"
REQUIREMENTS = HERE / "requirements.txt"
STAMP = VENV / ".bench-installed"
PEER_STAMP = PATHOS035 / ".bench-installed"
PATHOS035_SPEC = "pathos==0.3.5"


def venv_python() -> Path:
    """The benchmark venv's interpreter."""
    return VENV / "bin" / "python"


def _fingerprint() -> str:
    # Reinstall when the peer list or our own dependencies change.
    text = REQUIREMENTS.read_bytes() + (ROOT / "pyproject.toml").read_bytes()
    return hashlib.sha256(text).hexdigest()


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *args], check=True)


def ensure_venv() -> None:
    """Create ``benchmarks/.venv`` with ours (editable) and the peers, unless it is current."""
    fingerprint = _fingerprint()
    if venv_python().exists() and STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print(f"setting up {VENV} (one time) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    _pip(venv_python(), "--upgrade", "pip")
    _pip(venv_python(), "-e", str(ROOT), "-r", str(REQUIREMENTS))
    STAMP.write_text(fingerprint)


def ensure_pathos035() -> None:
    """Install the real pathos 0.3.5 (and its own dill, multiprocess...) into its target dir."""
    if PEER_STAMP.exists() and PEER_STAMP.read_text() == PATHOS035_SPEC:
        return
    print(f"installing {PATHOS035_SPEC} into {PATHOS035} ...", flush=True)
    _pip(venv_python(), "--upgrade", "--target", str(PATHOS035), PATHOS035_SPEC)
    PEER_STAMP.write_text(PATHOS035_SPEC)


def in_venv() -> bool:
    """True when this interpreter is the benchmark venv's."""
    return Path(sys.prefix).resolve() == VENV.resolve()


def reexec_in_venv(argv: list[str]) -> None:
    """Set the environment up if needed, then replace this process by the venv's Python."""
    ensure_venv()
    ensure_pathos035()
    python = str(venv_python())
    os.execv(python, [python, str(HERE / "run.py"), *argv])
