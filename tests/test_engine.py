"""The process engine's own promises (issue 9): a manager that never blocks, start-up
deaths that fail promptly, per-item timeouts, crashes that rerun nothing, deaths seen
at once, forked children kept off the pipe, and no file descriptor or /dev/shm file
held longer than needed."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

import pathos
from pathos import SerializationError, TaskTimeoutError, WorkerCrashedError, WorkerInitError, _shm

from . import _cases
from .conftest import TIMEOUT, make_pool

SRC = str(Path(pathos.__file__).resolve().parents[1])  # the pathos under test, for scripts
HAVE_SPAWN = "spawn" in multiprocessing.get_all_start_methods()


def _run_script(
    code: str, tmp_path: Path, *, stdin: bool = False, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(code))
    env = {**os.environ, "PYTHONPATH": SRC}
    if stdin:
        with open(script) as f:
            return subprocess.run(
                [sys.executable, "-"], stdin=f, capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
            )
    return subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=timeout, env=env, cwd=tmp_path
    )


# -- item 2: the manager never blocks on a pipe -----------------------------------------
def _big_function() -> Any:
    data = list(range(2_000_000))  # travels by value with the closure: ~10 MB of pickle

    def f(x: int) -> int:
        return x + len(data)

    return f


def test_big_function_to_a_busy_worker_returning_a_big_result() -> None:
    pool = make_pool("process", nodes=1)
    try:
        f = _big_function()
        assert pool.map(f, range(4)) == [x + 2_000_000 for x in range(4)]  # now measured quick
        busy = pool.apipe(_cases.bytes_after, 0.5, 4 << 20)  # then returns 4 MB through the pipe
        time.sleep(0.1)
        second = pool.amap(f, range(4))  # its first batch carries the function again
        assert len(busy.get(TIMEOUT)) == 4 << 20
        assert second.get(TIMEOUT) == [x + 2_000_000 for x in range(4)]
        started = time.monotonic()
        pool.apipe(_cases.sleep_then, 30)
        pool.terminate()
        assert time.monotonic() - started < 10, "terminate() must return promptly"
    finally:
        pool.terminate()
        pool.clear()


def test_a_message_too_large_to_send_fails_that_item(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathos._backends import process

    monkeypatch.setattr(process, "MAX_MESSAGE", 50_000)  # the real limit is 2 GiB
    pool = make_pool("process", nodes=1)
    try:
        it = pool.imap(len, ["a", "b" * 100_000, "c"])
        assert it.next(TIMEOUT) == 1
        with pytest.raises(SerializationError, match=r"item 1.*more than"):
            it.next(TIMEOUT)
        assert it.next(TIMEOUT) == 1
    finally:
        pool.clear()


# -- item 3: close() while an imap still reads its input -------------------------------
def test_imap_begun_before_close_finishes_while_workers_are_slow_to_exit() -> None:
    pool = make_pool("process")
    try:
        it = pool.imap(_cases.slow_to_exit, (i for i in range(40)))
        pool.close()
        got = []
        for _ in range(40):
            got.append(it.next(TIMEOUT))
            time.sleep(0.05)  # a slow consumer: the engine goes idle between refills
        assert got == list(range(40))
        pool.join()
    finally:
        pool.terminate()
        pool.clear()


# -- item 7: workers that die while starting --------------------------------------------
def test_initializer_that_exits_fails_promptly() -> None:
    pool = make_pool("process", initializer=_cases.exit_at_start)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerInitError, match="code 5") as info:
            pool.map(_cases.square, range(4))
        assert time.monotonic() - started < 20
        assert "initializer" in str(info.value)
    finally:
        pool.clear()


@pytest.mark.skipif(not HAVE_SPAWN, reason="needs the spawn start method")
def test_script_without_main_guard_under_spawn(tmp_path: Path) -> None:
    result = _run_script(
        """
        from pathos.pools import ProcessPool
        pool = ProcessPool(2, context="spawn")
        print(pool.map(abs, [-1, -2]))
        """,
        tmp_path,
    )
    assert result.returncode != 0
    assert "WorkerInitError" in result.stderr
    assert "__name__ == '__main__'" in result.stderr
    assert result.stderr.count("Traceback") <= 3, result.stderr[-3000:]


@pytest.mark.skipif(not HAVE_SPAWN, reason="needs the spawn start method")
def test_script_from_stdin_under_spawn(tmp_path: Path) -> None:
    result = _run_script(
        """
        from pathos.pools import ProcessPool
        if __name__ == "__main__":
            pool = ProcessPool(2, context="spawn")
            print(pool.map(abs, [-1, -2]))
        """,
        tmp_path,
        stdin=True,
    )
    if result.returncode == 0:  # this Python's spawn could import it after all
        assert "[1, 2]" in result.stdout
        return
    assert "WorkerInitError" in result.stderr, result.stderr[-3000:]
    assert result.stderr.count("Traceback") <= 8, result.stderr[-3000:]  # a few workers, not thousands


# -- item 9: timeout= is per item -------------------------------------------------------
def test_timeout_is_per_item_not_per_batch() -> None:
    pool = make_pool("process", nodes=1)
    try:
        assert pool.map(_cases.sleep_then, [0.3] * 4, chunksize=4, timeout=1) == [0.3] * 4
    finally:
        pool.clear()


def test_timeout_names_the_item_that_ran_too_long() -> None:
    pool = make_pool("process", nodes=1)
    try:
        with pytest.raises(TaskTimeoutError) as info:
            pool.map(_cases.sleep_then, [0.05, 0.05, 30, 0.05], chunksize=4, timeout=1)
        assert info.value.task == 2
        assert "item 2 " in str(info.value)
    finally:
        pool.clear()


# -- item 13: large results keep no file descriptor -------------------------------------
@pytest.mark.skipif(not _shm.available(), reason="no /dev/shm here")
def test_many_large_results_under_a_low_fd_limit(tmp_path: Path) -> None:
    pytest.importorskip("numpy")
    result = _run_script(
        """
        import resource
        import numpy as np
        from pathos.pools import ProcessPool
        if __name__ == "__main__":
            soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
            pool = ProcessPool(2)
            out = pool.map(lambda i: np.full(1 << 17, i), range(1500))
            assert all(int(a[0]) == i and a.size == 1 << 17 for i, a in enumerate(out))
            pool.clear()
            print("ok")
        """,
        tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ok" in result.stdout


# -- item 14: a crash reruns nothing ----------------------------------------------------
def _runs(path: Path) -> list[int]:
    return sorted(int(line) for line in path.read_text().split())


@pytest.mark.parametrize(("how", "pause"), [("exit", 0.0), ("sigkill", 0.0), ("segfault", 0.0), ("sigkill", 0.005)])
def test_a_crash_keeps_finished_items_and_runs_the_culprit_once(tmp_path: Path, how: str, pause: float) -> None:
    log = tmp_path / "runs"
    log.touch()
    task = _cases.logged(str(log), 2, how, pause)
    pool = make_pool("process", nodes=1)
    try:
        it = pool.imap(task, range(6), chunksize=6)
        outcomes: list[Any] = []
        for _ in range(6):
            try:
                outcomes.append(it.next(TIMEOUT))
            except WorkerCrashedError as exc:
                assert exc.task == 2
                outcomes.append("crashed")
        assert outcomes == [0, 1, "crashed", 3, 4, 5]
        assert _runs(log) == [0, 1, 2, 3, 4, 5], "every item ran exactly once"
    finally:
        pool.clear()


def test_retries_run_the_culprit_one_plus_retries_times(tmp_path: Path) -> None:
    log = tmp_path / "runs"
    log.touch()
    task = _cases.logged(str(log), 1, "exit")
    pool = make_pool("process", nodes=1, retries=2)
    try:
        with pytest.raises(WorkerCrashedError):
            pool.map(task, range(3), chunksize=3)
        assert _runs(log).count(1) == 3
        assert _runs(log).count(0) == 1
    finally:
        pool.clear()


# -- item 17: deaths seen at once; forked children kept off the pipe ---------------------
@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_death_noticed_while_a_forked_child_lives_on() -> None:
    pool = make_pool("process", nodes=1)
    try:
        started = time.monotonic()
        with pytest.raises(WorkerCrashedError):
            pool.pipe(_cases.fork_sleeper_then_die, 1)
        assert time.monotonic() - started < 5, "the death must be seen without waiting for the child"
        assert pool.map(_cases.square, range(3)) == [0, 1, 4]
    finally:
        pool.terminate()
        pool.clear()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_that_returns_does_not_speak_for_the_worker() -> None:
    pool = make_pool("process", nodes=1)
    try:
        assert pool.map(_cases.fork_and_return, range(4), chunksize=2) == [0, 1, 2, 3]
        assert pool.map(_cases.fork_and_return, range(3), chunksize=1) == [0, 1, 2]
        assert pool.map(_cases.square, range(3)) == [0, 1, 4]
    finally:
        pool.clear()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_runs_no_other_item_of_a_quick_batch(tmp_path: Path) -> None:
    """Items measured to be quick run without a check per item; a child forked by one of
    them that returns into the worker's loop must still run no other item (it would
    repeat their side effects), and end before it speaks."""
    import functools

    pool = make_pool("process", nodes=1)
    try:
        warm = tmp_path / "warm"
        assert pool.map(functools.partial(_cases.record_fork_at, path=str(warm), at=-1), range(500)) == list(
            range(500)
        )  # the job's function is now measured quick
        path = tmp_path / "runs"
        f = functools.partial(_cases.record_fork_at, path=str(path), at=1000)
        assert pool.map(f, range(3000)) == list(range(3000))
        runs = [int(line) for line in path.read_text().split()]
        assert sorted(runs) == list(range(3000)), "an item ran twice (in the forked child) or not at all"
    finally:
        pool.clear()


# -- item 18: /dev/shm freed at terminate -----------------------------------------------
def _our_files() -> set[str]:
    return {n for n in os.listdir(_shm.SHM_DIR) if n.startswith(f"pathos-{os.getpid()}-")}


@pytest.mark.skipif(not _shm.available(), reason="no /dev/shm here")
def test_terminate_frees_large_results_in_flight() -> None:
    pytest.importorskip("numpy")
    before = _our_files()
    leaked: set[str] = set()
    for _ in range(6):
        pool = make_pool("process")
        pool.amap(_cases.big_array_after, [0.0] * 40, chunksize=1)  # 64 MiB results, back to back
        time.sleep(0.4)
        pool.terminate()
        leaked |= _our_files() - before  # at once: not when this process ends
        pool.clear()
    assert not leaked, "results in flight must be unlinked at terminate"


# -- item 21: an internal failure is named ----------------------------------------------
def test_manager_failure_is_named_by_later_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    from pathos._backends import process

    pool = make_pool("process")
    try:
        assert pool.map(_cases.square, range(3)) == [0, 1, 4]

        def broken(self: Any) -> None:
            raise RuntimeError("engine bug for the test")

        monkeypatch.setattr(process.ProcessBackend, "_sweep_cancelled", broken)
        with pytest.raises(Exception, match="engine bug for the test"):
            pool.map(_cases.square, range(3))
        monkeypatch.undo()
        with pytest.raises(Exception, match="engine bug for the test"):
            pool.map(_cases.square, range(3))
    finally:
        pool.terminate()
        pool.clear()


# -- the wire protocol ------------------------------------------------------------------
def test_protocol_rejects_a_reply_for_another_batch() -> None:
    from pathos._workers import _protocol

    with pytest.raises(_protocol.ProtocolError, match="batch 7"):
        _protocol.expect_batch(3, 7, "done")


def test_task_raising_system_exit_comes_back_as_such() -> None:
    pool = make_pool("process", nodes=1)
    try:
        with pytest.raises(SystemExit):
            pool.pipe(sys.exit, 3)
        assert pool.map(_cases.square, range(3)) == [0, 1, 4]
    finally:
        pool.clear()
