"""Every script in examples/ runs, as a user would run it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NEEDS = {"cluster.py": "distributed"}
STDERR_HAS = {"progress.py": "100/100"}
STDOUT_HAS = {"progress.py": "items reported: 50", "asyncio_example.py": "awaited amap: 285"}


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.py")))
def test_example_runs(script: str) -> None:
    if script in NEEDS:
        pytest.importorskip(NEEDS[script])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    assert STDERR_HAS.get(script, "") in out.stderr
    assert STDOUT_HAS.get(script, "") in out.stdout
    if script == "quickstart.py":
        assert out.stdout.strip() == "Parallel Results: [1, 8, 9, 256, 125]"
