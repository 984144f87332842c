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
from typing import Any

import pytest

RUN = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"
BENCH = RUN.parent
WORKLOADS = {"tiny", "lambda", "chunk1", "start", "start_cold", "import", "cpu", "np_args", "np_results", "scaling"}
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
    # The fresh-interpreter workloads: one figure per interpreter (the untimed first run
    # aside), the import timed alone, then with a pool started and its first result.
    imported, cold = doc["results"]["import"]["ours"], doc["results"]["start_cold"]["ours"]
    assert imported["statement"] == "import pathos.multiprocessing"
    assert len(imported["values"]) == 5 and len(cold["values"]) == 3
    assert min(imported["values"]) > 0 and min(cold["values"]) > 0
    assert "`import pathos.multiprocessing`" in table
    assert any(g["key"] == "import" and g["met"] is not None for g in doc["goals"])


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


def _bench_module(name: str, monkeypatch: pytest.MonkeyPatch) -> Any:
    import importlib

    monkeypatch.syspath_prepend(str(BENCH))  # the harness's modules import each other by bare name
    return importlib.import_module(name)


def _goal_row(goals: Any, key: str, results: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = next(r for r in goals.check(results, 2) if r["key"] == key)
    return row


def _rounds(workload: str, figures: dict[str, list[float]]) -> dict[str, Any]:
    """Results of one workload with the given per-round figures for each library."""
    return {workload: {lib: {"values": values, "per_round": values, "error": None} for lib, values in figures.items()}}


def test_a_goal_with_a_rounds_rule_needs_its_rounds_too(monkeypatch: pytest.MonkeyPatch) -> None:
    goals = _bench_module("_goals", monkeypatch)
    by_key = {g.key: g for g in goals.GOALS}
    tiny_mp = by_key["tiny_mp"]
    assert tiny_mp.target == 1.5 and goals.rounds_needed(tiny_mp, 5) == 4 and goals.rounds_needed(tiny_mp, 3) == 3
    # Ratios per round (multiprocessing's time / ours): 2, 2, 2, 1, 1 -> median 2 (met), 3 of 5 rounds.
    ours = [1.0, 1.0, 1.0, 1.0, 1.0]
    mp = [2.0, 2.0, 2.0, 1.0, 1.0]
    row = _goal_row(goals, "tiny_mp", _rounds("tiny", {"ours": ours, "multiprocessing": mp}))
    assert row["met"] is False and "3 of 5 rounds" in row["verdict"] and "4 needed" in row["verdict"]
    assert row["why"]  # a short goal says why (or that it needs a fresh reading)
    mp[3] = 2.0  # 4 of 5 rounds
    row = _goal_row(goals, "tiny_mp", _rounds("tiny", {"ours": ours, "multiprocessing": mp}))
    assert row["met"] is True and row["why"] == ""
    # A goal without the rule: the median alone decides.
    assert goals.rounds_needed(by_key["lambda_pathos"], 5) == 0


def test_the_import_goal_reads_milliseconds(monkeypatch: pytest.MonkeyPatch) -> None:
    goals = _bench_module("_goals", monkeypatch)

    def row(seconds: list[float]) -> dict[str, Any]:
        return _goal_row(goals, "import", _rounds("import", {"ours": seconds}))

    met = row([0.020, 0.025, 0.029])
    assert met["met"] is True and met["measured"] == "25 ms" and met["target"] == "≤ 30 ms"
    short = row([0.040, 0.031, 0.035])
    assert short["met"] is False and short["verdict"] == "short by 5 ms" and short["why"]
    assert row([0.030])["met"] is True  # at the target is met (≤)
