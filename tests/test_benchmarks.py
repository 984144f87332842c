"""The benchmark harness still runs: every workload, on our pool only, at tiny sizes.

Speed is not asserted (a benchmark measures it; a test never does). Needs no peers and no
network: ``--here`` uses this interpreter and ``--libs ours`` skips every other library.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
WORKLOADS = {"tiny", "lambda", "chunk1", "start", "cpu", "np_args", "np_results", "scaling"}
WORKLOADS |= {"np_args_cold", "np_results_cold"}


def test_harness_runs_every_workload_on_ours(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    cmd = [sys.executable, str(RUN), "--here", "--libs", "ours", "--rounds", "1", "--scale", "0.001"]
    cmd += ["--budget", "5", "--timeout", "60", "--out", str(tmp_path)]
    env = dict(os.environ, MPLBACKEND="Agg")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    assert set(doc["results"]) == WORKLOADS
    for workload, by_lib in doc["results"].items():
        ours = by_lib["ours"]
        assert ours["error"] is None, (workload, ours.get("traceback"))
        assert ours["values"] or ours["by_nodes"], workload
        assert "/src/pathos" in ours["version"], ours["version"]  # the tree's code, not an installed copy
    table = (tmp_path / "results.md").read_text()
    assert "## Medians" in table and "## Goals" in table and "## Memory-copy bound" in table


def _digest(folder: Path) -> dict[str, str]:
    import hashlib

    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def test_only_a_full_run_writes_the_committed_results() -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(run)
    committed, scratch = RUN.parent / "results", RUN.parent / "scratch"
    assert run.parse_args([]).out == committed
    for argv in (["--quick"], ["--only", "tiny"], ["--libs", "ours"], ["--nodes", "4"], ["--scale", "0.5"], ["--here"]):
        assert run.parse_args(argv).out == scratch, argv
    assert run.parse_args(["--quick", "--out", "/tmp/x"]).out == Path("/tmp/x")


def test_a_quick_run_leaves_the_committed_results_alone() -> None:
    committed = RUN.parent / "results"
    before = _digest(committed)
    cmd = [sys.executable, str(RUN), "--here", "--quick", "--libs", "ours", "--only", "tiny", "--rounds", "1"]
    cmd += ["--scale", "0.001", "--timeout", "60"]
    env = dict(os.environ, MPLBACKEND="Agg")
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert _digest(committed) == before
    assert str(RUN.parent / "scratch" / "results.json") in out.stdout and "is untouched" in out.stdout
