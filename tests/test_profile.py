"""pathos.profile: cProfile helpers, here and in a worker."""

from __future__ import annotations

import pstats
from pathlib import Path
from typing import Any

import pytest

import pathos.profile as pr

from . import _cases
from .conftest import make_pool


@pytest.fixture(autouse=True)
def no_profiler() -> Any:
    yield
    pr.disable_profiling()


def test_profiled_prints_only_when_enabled(capsys: pytest.CaptureFixture[str]) -> None:
    work = pr.profiled(gen="cumulative")(_cases.square)
    assert work(3) == 9 and capsys.readouterr().out == ""
    pr.enable_profiling()
    assert work(4) == 16
    out = capsys.readouterr().out
    assert "Ordered by: cumulative time" in out and "square" in out
    assert pr.not_profiled(work)(5) == 25 and capsys.readouterr().out == ""
    assert pr.get_stats()
    pr.clear_stats()
    assert pr.get_stats() == []


def test_profiled_dumps_a_file_per_id(tmp_path: Path) -> None:
    pr.enable_profiling()
    work = pr.profiled(gen=lambda: "me", prefix=str(tmp_path / "id-"))(_cases.square)
    assert work(3) == 9
    stats = pstats.Stats(str(tmp_path / "id-me.prof"))
    assert any(name == "square" for (_, _, name) in stats.stats)  # type: ignore[attr-defined]


def test_start_stop_and_ids() -> None:
    pr.start_profiling()
    sum(range(10))
    pr.stop_profiling()
    assert pr.get_stats()
    assert isinstance(pr.process_id(), int) and isinstance(pr.thread_id(), int)


def test_profile_one_call_here_and_in_a_worker(capsys: pytest.CaptureFixture[str]) -> None:
    assert pr.profile("tottime")(_cases.add, 1, y=2) == 3
    assert "Ordered by: internal time" in capsys.readouterr().out
    assert pr.profiler is None
    pool, two = make_pool("process", nodes=1), make_pool("thread", nodes=2)
    try:
        assert pr.profile(pipe=pool.pipe)(_cases.add, 2, 3) == 5
        with pytest.raises(ValueError, match="one node"):
            pr.profile(pipe=two.pipe)
    finally:
        pool.clear()
        two.clear()
