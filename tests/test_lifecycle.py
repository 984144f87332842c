"""Regressions of issue 9 fixed in the lifecycle core: the pool cache (fork, lock), the
thread and serial backends (timeouts per item, BaseException tasks, terminate) and the
reason a broken backend gives."""

from __future__ import annotations

import os
import threading
import time
import warnings
from typing import Any, Callable

import pytest

from pathos._backend import WakeupPipe
from pathos._backends.thread import ThreadBackend
from pathos._errors import PoolClosedError, TaskTimeoutError
from pathos.pools import ProcessPool, SerialPool, ThreadPool, _ThreadPool

from . import _cases
from .conftest import make_pool

T = 30  # seconds: reached only if something hangs


# -- item 1: a forked child never sees its parent's cached pools --------------------------
def nested_map(n: int) -> list[int]:
    """Runs in a process-pool worker: a pool with the *default* id, as the parent's."""
    pool = ProcessPool(nodes=2)
    try:
        return pool.amap(_cases.square, range(n)).get(T)  # type: ignore[no-any-return]
    finally:
        pool.clear()


def test_default_id_pool_works_in_a_worker_and_after_fork() -> None:
    pool = ProcessPool(nodes=2)  # the default id (2), cached in the parent
    try:
        assert pool.map(_cases.square, [1, 2]) == [1, 4]
        assert pool.amap(nested_map, [3]).get(T) == [[0, 1, 4]]
        assert in_forked_child(lambda: nested_map(4) == [0, 1, 4, 9]) == 0
        assert pool.map(_cases.square, [3]) == [9]  # the parent's pool is untouched
    finally:
        pool.clear()


def test_uncached_pool_made_before_fork_works_in_the_child() -> None:
    pool = _ThreadPool(2)  # multiprocessing's API: a pool of its own, outside the cache
    try:
        assert pool.map(_cases.square, [1, 2]) == [1, 4]
        assert in_forked_child(lambda: pool.map(_cases.square, [3, 4]) == [9, 16]) == 0
        assert pool.map(_cases.square, [5]) == [25]
    finally:
        pool.terminate()


def in_forked_child(check: Callable[[], bool]) -> int | None:
    """The exit code of a forked child that runs ``check``: 0 if it returned True."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() of a threaded process
        child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through its exit code
        code = 1
        try:
            code = 0 if check() else 2
        finally:
            os._exit(code)
    return _exit_code(child, T)


def _exit_code(pid: int, seconds: float) -> int | None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.02)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail(f"the forked child hung for {seconds} s")


# -- item 5: terminate() never rewrites a completed call ------------------------------------
def test_thread_terminate_keeps_a_completed_call_still_queued(monkeypatch: pytest.MonkeyPatch) -> None:
    """The call completes and terminate() runs while its job is still in the backend's
    queue: the pool thread is held right after it reported the last batch, before it
    looks at the queue again (where it would drop the finished job)."""
    reported, release = threading.Event(), threading.Event()
    original = ThreadBackend._run

    def run_then_hold(self: Any, me: Any, batch: Any) -> bool:
        ok = original(self, me, batch)
        reported.set()
        release.wait(T)
        return ok

    monkeypatch.setattr(ThreadBackend, "_run", run_then_hold)
    pool = ThreadPool(1, id="lifecycle-terminate-completed")
    try:
        result = pool.amap(_cases.square, [1, 2], chunksize=2)
        assert reported.wait(T)
        assert result.get(T) == [1, 4]
        pool._serve().terminate()
        assert result.get(0) == [1, 4]
        assert not result.cancelled()
    finally:
        release.set()
        pool.clear()


# -- item 9: timeout= per item --------------------------------------------------------------
@pytest.mark.parametrize("kind", ["thread", "serial"])
def test_timeout_is_per_item_not_per_batch(kind: str) -> None:
    pool = make_pool(kind)
    try:
        assert pool.map(_cases.sleep_then, [0.3] * 4, chunksize=4, timeout=1) == [0.3] * 4
    finally:
        pool.clear()


@pytest.mark.parametrize("kind", ["thread", "serial"])
def test_timeout_names_its_item_and_the_rest_of_the_batch_runs(kind: str) -> None:
    pool = make_pool(kind)
    try:
        it = pool.imap(_cases.sleep_then, [0.0, 0.01, 3.0, 0.02], chunksize=4, timeout=0.5)
        assert it.next(timeout=T) == 0.0
        assert it.next(timeout=T) == 0.01
        with pytest.raises(TaskTimeoutError, match=r"^item 2 ") as info:
            it.next(timeout=T)
        assert info.value.task == 2
        assert it.next(timeout=T) == 0.02
    finally:
        pool.clear()


# -- item 12: one backend per id; no wake-up into a reused descriptor -------------------------
def test_two_threads_building_one_id_get_one_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Any] = []
    original = ThreadPool._make_backend

    def slow_make(self: Any, nodes: int) -> Any:
        time.sleep(0.2)  # widen the window between the cache lookup and the store
        backend = original(self, nodes)
        made.append(backend)
        return backend

    monkeypatch.setattr(ThreadPool, "_make_backend", slow_make)
    pools: list[Any] = []
    threads = [threading.Thread(target=lambda: pools.append(ThreadPool(2, id="lifecycle-race"))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(T)
    try:
        assert len(made) == 1
        assert pools[0]._serve() is pools[1]._serve() is made[0]
    finally:
        pools[0].clear()


def test_wakeup_after_close_never_writes_to_a_reused_descriptor() -> None:
    wakeup = WakeupPipe()
    wakeup.wake()
    wakeup.drain()
    wakeup.close()
    r, w = os.pipe()  # likely reuses the closed descriptors' numbers
    try:
        os.set_blocking(r, False)
        wakeup.wake()
        wakeup.drain()
        with pytest.raises(BlockingIOError):
            os.read(r, 1)
    finally:
        os.close(r)
        os.close(w)


# -- item 16: SystemExit, KeyboardInterrupt, GeneratorExit in a thread task -------------------
def raise_it(kind: type[BaseException]) -> Any:
    raise kind("from the task")


@pytest.mark.parametrize("kind", ["thread", "serial"])
@pytest.mark.parametrize("exc", [SystemExit, KeyboardInterrupt, GeneratorExit])
def test_task_raising_base_exceptions_comes_back_at_its_item(kind: str, exc: type[BaseException]) -> None:
    pool = make_pool(kind)
    try:
        result = pool.amap(raise_it, [exc])
        with pytest.raises(exc, match="from the task"):
            result.get(T)
        it = pool.imap(lambda x: raise_it(exc) if x == 1 else x, [0, 1, 2])
        assert it.next(timeout=T) == 0
        with pytest.raises(exc):
            it.next(timeout=T)
        assert it.next(timeout=T) == 2
        assert pool.map(_cases.square, range(4)) == [0, 1, 4, 9]  # still usable
    finally:
        pool.clear()


# -- item 21: a backend that died for an internal reason says why ---------------------------
def test_broken_thread_pool_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken_run(self: Any, me: Any, batch: Any) -> bool:
        raise RuntimeError("engine bug in the test")

    monkeypatch.setattr(ThreadBackend, "_run", broken_run)
    pool = make_pool("thread")
    try:
        result = pool.amap(_cases.square, [1])
        with pytest.raises(PoolClosedError, match="engine bug in the test"):
            result.get(T)
        with pytest.raises(PoolClosedError, match="engine bug in the test"):
            pool.map(_cases.square, [1])
    finally:
        pool.terminate()
        pool.clear()


# -- serial: terminate from another thread fails the running call ---------------------------
def test_serial_terminate_from_another_thread_fails_a_running_call() -> None:
    pool = SerialPool()
    backend = pool._serve()
    threading.Timer(0.2, backend.terminate).start()
    with pytest.raises(PoolClosedError):
        pool.map(_cases.sleep_then, [0.1] * 20, chunksize=1)
