"""progress=: a tqdm bar with the right total and final count, closed once, on every pool."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import pathos._progress
from pathos._progress import ProgressBar

from . import _cases
from .conftest import TIMEOUT, make_pool

VERBS = {
    "map": lambda p, f, xs, **kw: p.map(f, xs, **kw),
    "imap": lambda p, f, xs, **kw: list(p.imap(f, xs, **kw)),
    "uimap": lambda p, f, xs, **kw: sorted(p.uimap(f, xs, **kw)),
    "amap": lambda p, f, xs, **kw: p.amap(f, xs, **kw).get(TIMEOUT),
}


def last_render(err: str) -> str:
    """The bar as last drawn (tqdm redraws in place with carriage returns)."""
    return [part for part in err.replace("\n", "\r").split("\r") if part.strip()][-1]


@pytest.fixture
def bars(monkeypatch: pytest.MonkeyPatch) -> list[ProgressBar]:
    made: list[ProgressBar] = []

    class Recorded(ProgressBar):
        def __init__(self, *args: Any, **kwds: Any) -> None:
            super().__init__(*args, **kwds)
            made.append(self)

    monkeypatch.setattr(pathos._progress, "ProgressBar", Recorded)
    return made


@pytest.mark.parametrize("verb", list(VERBS))
def test_bar_total_and_final_count(pool: Any, verb: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert VERBS[verb](pool, _cases.square, range(20), progress=True) == [x * x for x in range(20)]
    line = last_render(capsys.readouterr().err)
    assert "20/20" in line and "100%" in line


@pytest.mark.parametrize("verb", list(VERBS))
def test_the_call_returns_after_its_bar_is_closed_at_its_final_count(
    pool: Any, verb: str, bars: list[ProgressBar], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 9 item 11: the bar was closed from an engine thread, sometimes after the call
    # had returned (garbled terminal output). A slow terminal makes that certain here.
    finish = ProgressBar.finish

    def slow_finish(self: ProgressBar, job: Any = None) -> None:
        time.sleep(0.2)
        finish(self, job)

    monkeypatch.setattr(ProgressBar, "finish", slow_finish)
    assert VERBS[verb](pool, _cases.square, range(20), progress=True) == [x * x for x in range(20)]
    assert len(bars) == 1 and bars[0].closed and bars[0].count == 20


def test_unsized_input_shows_a_running_count(pool: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert len(list(pool.imap(_cases.square, (x for x in range(15)), progress=True))) == 15
    line = last_render(capsys.readouterr().err)
    assert "15item" in line and "/" not in line.split("[")[0]


def test_several_iterables_count_the_shortest(capsys: pytest.CaptureFixture[str]) -> None:
    pool = make_pool("serial")
    assert list(pool.imap(_cases.add, [1, 2, 3], range(10), progress=True)) == [1, 3, 5]
    assert "3/3" in last_render(capsys.readouterr().err)


def test_tqdm_options_and_pool_default(capsys: pytest.CaptureFixture[str]) -> None:
    pool = make_pool("thread", progress={"desc": "squares", "unit": "sq"})
    try:
        pool.map(_cases.square, range(5))
        assert last_render(capsys.readouterr().err).startswith("squares: 100%")
        pool.map(_cases.square, range(5), progress=False)
        assert capsys.readouterr().err == ""
    finally:
        pool.clear()


def test_callable_gets_counts_of_finished_items(pool: Any) -> None:
    counts: list[int] = []
    lock = threading.Lock()

    def report(n: int) -> None:
        with lock:
            counts.append(n)

    assert pool.map(_cases.square, range(30), progress=report, chunksize=4) == [x * x for x in range(30)]
    assert sum(counts) == 30 and all(0 < n <= 4 for n in counts)


@pytest.mark.parametrize("kind", ["serial", "thread", "process"])
def test_bar_closed_once_on_failure_and_cancel(kind: str, bars: list[ProgressBar]) -> None:
    pool = make_pool(kind)
    try:
        with pytest.raises(KeyError):
            pool.map(_cases.fail_at, range(10), progress=True)
        it = pool.imap(_cases.sleep_then, [0.01] * 50, progress=True)
        next(it)
        it.close()
        with pytest.raises(ValueError):
            pool.map(_cases.square, iter([1, "x"]), progress=True, chunksize=-1)
    finally:
        pool.clear()
    assert len(bars) == 2 and all(bar.closed for bar in bars)
    assert not [t for t in threading.enumerate() if "monitor" in type(t).__name__.lower()]


def test_bad_progress_value_names_the_option() -> None:
    pool = make_pool("serial")
    with pytest.raises(ValueError, match="progress="):
        pool.map(_cases.square, [1], progress=3)


NOTEBOOK_WITHOUT_WIDGETS = """
import sys, types, warnings
warnings.simplefilter("always")  # a warning would be printed, not swallowed

class ZMQInteractiveShell:  # what a Jupyter kernel's get_ipython() returns
    config = {"IPKernelApp": {}}

ipython = types.ModuleType("IPython")
ipython.get_ipython = lambda: ZMQInteractiveShell()
sys.modules.update({
    "IPython": ipython,
    "ipykernel": types.ModuleType("ipykernel"),
    "ipykernel.zmqshell": types.ModuleType("ipykernel.zmqshell"),
    "ipywidgets": None,  # not installed: importing it raises ImportError
})
from pathos._progress import in_notebook
from pathos.pools import ThreadPool
assert in_notebook()
print(ThreadPool(2).map(abs, range(-10, 0), progress=True))
"""


def test_notebook_without_ipywidgets_falls_back_to_a_quiet_text_bar() -> None:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run(
        [sys.executable, "-c", NOTEBOOK_WITHOUT_WIDGETS], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == str(list(range(10, 0, -1)))
    assert "IProgress" not in out.stderr and "Warning" not in out.stderr, out.stderr
    assert "10/10" in out.stderr  # tqdm's text bar
