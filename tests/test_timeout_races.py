"""A timeout kill runs no item twice (README "Failures and timeouts", promise 4).

A timed batch sends each finished item's result ahead before the next item's clock
starts; a worker killed for a timeout must not take the results of the items it had
finished with it (they would run again with ``retries=0``), and the kill must not
make an item that started just before it run a second time.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from pathos import TaskTimeoutError, WorkerCrashedError

from .conftest import make_pool

METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]


def _mark(directory: str, x: int) -> None:
    """Count one run of item ``x``: one byte appended to its own file."""
    fd = os.open(os.path.join(directory, f"{x}.runs"), os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        os.write(fd, b".")
    finally:
        os.close(fd)


def quick_then_stuck(args: tuple[str, int, int]) -> int:
    directory, x, stuck = args
    _mark(directory, x)
    if x == stuck:
        time.sleep(30)  # killed by its timeout long before
    return x


def ends_near_deadline(args: tuple[str, int, float]) -> int:
    directory, x, seconds = args
    _mark(directory, x)
    time.sleep(seconds)
    return x


def _runs(directory: Path, n: int) -> dict[int, int]:
    return {x: len((directory / f"{x}.runs").read_bytes()) for x in range(n) if (directory / f"{x}.runs").exists()}


@pytest.mark.parametrize("method", METHODS)
def test_timeout_kill_reruns_no_finished_item(method: str, tmp_path: Path) -> None:
    # 40 items in one batch (measured job: warm-up call first), item 30 hangs: the
    # quick items 0..29 finished within a millisecond of each other, before the kill.
    # (The timeout is generous: a new spawn worker's loading of the batch is timed too.)
    pool = make_pool("process", nodes=1, context=method)
    try:
        warm = tmp_path / "warm"
        warm.mkdir()
        assert pool.map(quick_then_stuck, [(str(warm), x, -1) for x in range(40)], chunksize=40, timeout=5) == list(
            range(40)
        )
        runs = tmp_path / "runs"
        runs.mkdir()
        outcomes: list[Any] = []
        it = pool.imap(quick_then_stuck, [(str(runs), x, 30) for x in range(40)], chunksize=40, timeout=3)
        for _ in range(40):
            try:
                outcomes.append(it.next(60))
            except TaskTimeoutError as exc:
                outcomes.append(("timeout", exc.task))
        assert outcomes == [*range(30), ("timeout", 30), *range(31, 40)]
        counts = _runs(runs, 40)
        assert counts == dict.fromkeys(range(40), 1), f"items run more than once: {counts}"
    finally:
        pool.terminate()
        pool.clear()


def test_items_ending_at_their_deadline_run_once(tmp_path: Path) -> None:
    # Items that end just around their deadline: the manager may decide a timeout just
    # as the worker finishes the item and starts the next one. Whatever it decides,
    # no item runs twice (retries=0), and each item either returns or fails.
    timeout = 0.05
    pool = make_pool("process", nodes=2)
    try:
        for round_ in range(8):
            directory = tmp_path / f"round-{round_}"
            directory.mkdir()
            args = [(str(directory), x, timeout * (0.9 + 0.025 * (x % 9))) for x in range(24)]
            it = pool.imap(ends_near_deadline, args, chunksize=4, timeout=timeout)
            for _ in args:
                try:
                    it.next(60)
                except TaskTimeoutError:
                    pass  # it passed its deadline
                except WorkerCrashedError as exc:  # the kill for the item before it hit it
                    assert "is not run a second time" in str(exc)
            counts = _runs(directory, len(args))
            # 0: killed between creating its file and writing to it
            assert all(c <= 1 for c in counts.values()), f"round {round_}: items run more than once: {counts}"
    finally:
        pool.terminate()
        pool.clear()


START_IMPORTS = """
import sys, threading

class Spy:
    seen = []

    def find_spec(self, name, path=None, target=None):
        if name.startswith("multiprocessing.popen") or name == "multiprocessing.forkserver":
            Spy.seen.append((name, threading.current_thread().name))
        return None

sys.meta_path.insert(0, Spy())

if __name__ == "__main__":
    from pathos.pools import ProcessPool

    pool = ProcessPool(2, context=sys.argv[1], id="start-imports")
    assert pool.map(abs, [-1, -2]) == [1, 2]
    pool.clear()
    print(Spy.seen)
    assert Spy.seen and all(thread == "MainThread" for _, thread in Spy.seen), Spy.seen
"""


@pytest.mark.parametrize("method", METHODS)
def test_start_modules_are_imported_in_the_callers_thread(method: str, tmp_path: Path) -> None:
    # Bug B: imported first on the manager thread, a popen module could be copied half
    # initialized into a child another thread forked meanwhile (ImportError there).
    script = tmp_path / "start_imports.py"
    script.write_text(START_IMPORTS)
    out = subprocess.run([sys.executable, str(script), method], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
