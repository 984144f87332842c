"""Failures never hang: the crash table (per start method), timeouts, retries,
cancellation, Ctrl-C, and the serialization errors of arguments, results and exceptions."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, Callable

import pytest

from pathos import (
    PoolClosedError,
    RemoteError,
    SerializationError,
    TaskTimeoutError,
    WorkerCrashedError,
    WorkerInitError,
)
from pathos.helpers import cpu_count
from pathos.pools import ProcessPool

from . import _cases
from .conftest import TIMEOUT, children, make_pool

METHODS = [m for m in ("fork", "spawn", "forkserver") if m in multiprocessing.get_all_start_methods()]


def _check_crash(signame: str | None, exitcode: int | None) -> Callable[[Any], None]:
    def check(error: Any) -> None:
        assert error.task == 3
        assert error.pid > 0
        if signame:
            assert error.signal == signame
        if exitcode is not None:
            assert error.exitcode == exitcode

    return check


# (case id, function, argument maker, expected error, extra check)
CRASHES = [
    ("sigkill", _cases.sigkill_self, None, WorkerCrashedError, _check_crash("SIGKILL", -9)),
    ("segfault", _cases.segfault, None, WorkerCrashedError, _check_crash("SIGSEGV", None)),
    ("os-exit", _cases.exit_hard, None, WorkerCrashedError, _check_crash(None, 7)),
    ("pickle-argument", _cases.square, _cases.ErrorAtPickle, SerializationError, None),
    ("unpickle-argument-in-worker", _cases.square, _cases.ErrorAtUnpickle, RuntimeError, None),
    ("pickle-result-in-worker", _cases.return_unpicklable, None, SerializationError, None),
    ("unpickle-result-in-parent", _cases.return_bad_unpickle, None, SerializationError, None),
    ("unrebuildable-exception", _cases.raise_unpicklable_error, None, RemoteError, None),
]


@pytest.fixture(params=METHODS)
def method_pool(request: pytest.FixtureRequest) -> Any:
    pool = make_pool("process", context=request.param)
    yield pool
    pool.terminate()
    pool.clear()


@pytest.mark.parametrize(("case", "fn", "arg", "error", "check"), CRASHES, ids=[c[0] for c in CRASHES])
def test_crash_table(method_pool: Any, case: str, fn: Any, arg: Any, error: type, check: Any) -> None:
    items: list[Any] = list(range(8))
    if arg is not None:
        items[3] = arg()
    started = time.monotonic()
    with pytest.raises(error) as info:
        method_pool.map(fn, items)
    assert time.monotonic() - started < 10, "a failure must be reported promptly"
    if check is not None:
        check(info.value)
    # Only the culprit fails: imap gives every other item, and the pool stays usable.
    outcomes = []
    it = method_pool.imap(fn, items)
    for _ in items:
        try:
            outcomes.append(it.next(TIMEOUT))
        except error:
            outcomes.append("failed")
    assert outcomes[3] == "failed"
    assert [o for i, o in enumerate(outcomes) if i != 3] == [fn(x) for i, x in enumerate(items) if i != 3]
    assert method_pool.map(_cases.square, range(4)) == [0, 1, 4, 9]


def test_unrebuildable_exception_carries_the_remote_text() -> None:
    pool = make_pool("process")
    try:
        with pytest.raises(RemoteError) as info:
            pool.pipe(_cases.raise_unpicklable_error, 3)
        assert "UnpicklableError" in info.value.type_name
        assert "1-2" in info.value.text and "raise UnpicklableError" in info.value.traceback
    finally:
        pool.clear()


@pytest.mark.parametrize("method", METHODS)
def test_initializer_that_raises(method: str) -> None:
    pool = make_pool("process", context=method, initializer=_cases.init_raises)
    try:
        with pytest.raises(WorkerInitError, match="initializer failed") as info:
            pool.map(_cases.square, range(4))
        assert isinstance(info.value.__cause__, RuntimeError)
        with pytest.raises(WorkerInitError):  # every call says so; none hangs
            pool.pipe(_cases.square, 2)
    finally:
        pool.clear()


def test_retries_rerun_an_item_whose_worker_died(tmp_path: Any) -> None:
    marker = tmp_path / "died-once"

    def die_once(x: int) -> int:
        if x == 2 and not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGKILL)
        return x

    pool = make_pool("process", retries=1)
    try:
        assert pool.map(die_once, range(5)) == [0, 1, 2, 3, 4]
    finally:
        pool.clear()


def test_crash_loses_no_other_item_in_flight() -> None:
    pool = make_pool("process")
    try:
        got = sorted(x for x in _drain(pool.uimap(_cases.sigkill_self, range(40), chunksize=5)) if x != "failed")
        assert got == [x for x in range(40) if x != 3]
    finally:
        pool.clear()


def _drain(it: Any) -> list[Any]:
    out = []
    while True:
        try:
            out.append(it.next(TIMEOUT))
        except StopIteration:
            return out
        except Exception:
            out.append("failed")


@pytest.mark.parametrize("kind", ["process", "thread", "serial"])
def test_timeout_fails_only_the_late_item(kind: str) -> None:
    pool = make_pool(kind)
    try:
        started = time.monotonic()
        with pytest.raises(TaskTimeoutError) as info:
            pool.map(_cases.sleepy, range(4), timeout=0.5)
        assert isinstance(info.value, TimeoutError)
        assert info.value.task == 2 and info.value.timeout == 0.5
        assert time.monotonic() - started < 10
        outcomes = _drain(pool.imap(_cases.sleepy, range(4), timeout=0.5))
        assert outcomes == [0, 1, "failed", 3]
        assert pool.map(_cases.square, range(3)) == [0, 1, 4]
    finally:
        pool.terminate()
        pool.clear()


def test_pool_default_timeout_applies_to_pipe() -> None:
    pool = make_pool("process", timeout=0.5)
    try:
        with pytest.raises(TaskTimeoutError):
            pool.pipe(_cases.sleepy, 2)
        assert pool.pipe(_cases.sleepy, 1) == 1
    finally:
        pool.clear()


def test_cancel_an_async_result_frees_the_workers() -> None:
    pool = make_pool("process")
    try:
        result = pool.amap(_cases.sleep_then, [30, 30])
        time.sleep(0.3)
        assert result.cancel() and result.cancelled()
        started = time.monotonic()
        assert pool.map(_cases.square, range(4)) == [0, 1, 4, 9]
        assert time.monotonic() - started < 10
        with pytest.raises(PoolClosedError):
            result.get(TIMEOUT)
    finally:
        pool.clear()


def test_closing_an_iterator_early_frees_the_workers() -> None:
    pool = make_pool("process")
    try:
        it = pool.imap(_cases.sleep_then, [0.01, 30, 30, 30])
        assert it.next(TIMEOUT) == 0.01
        it.close()
        started = time.monotonic()
        assert pool.map(_cases.square, range(4)) == [0, 1, 4, 9]
        assert time.monotonic() - started < 10
    finally:
        pool.clear()


def test_unpicklable_function_is_a_clear_error() -> None:
    generator = (i for i in range(3))  # neither pickle nor dill can send a generator
    pool = make_pool("process")
    try:
        with pytest.raises(SerializationError, match="function"):
            pool.map(lambda x: (next(generator), x), range(3))
        assert pool.map(_cases.square, [2]) == [4]
    finally:
        pool.clear()


CTRL_C_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from pathos.pools import ProcessPool
    from tests._cases import pid, sleep_then
    pool = ProcessPool(2)
    print(*sorted(set(pool.map(pid, range(20)))), flush=True)
    print("mapping", flush=True)
    pool.map(sleep_then, [60] * 4)
    """
)


def test_ctrl_c_stops_the_call_and_leaves_no_process() -> None:
    psutil = pytest.importorskip("psutil")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    child = subprocess.Popen(
        [sys.executable, "-c", CTRL_C_SCRIPT], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None
        worker_pids = [int(p) for p in child.stdout.readline().split()]
        assert child.stdout.readline().strip() == "mapping"
        time.sleep(0.5)
        child.send_signal(signal.SIGINT)
        started = time.monotonic()
        child.wait(TIMEOUT)
        assert time.monotonic() - started < 5
        assert child.returncode != 0
        assert "KeyboardInterrupt" in child.stderr.read()  # type: ignore[union-attr]
        deadline = time.monotonic() + 5
        while any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in worker_pids):
            assert time.monotonic() < deadline, "worker processes outlived Ctrl-C"
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait(TIMEOUT)


def test_nested_process_pools() -> None:
    def inner(n: int) -> list[int]:
        with ProcessPool(2, id="inner") as pool:
            return pool.map(_cases.square, range(n))

    pool = make_pool("process")
    try:
        assert pool.map(inner, [2, 3]) == [[0, 1], [0, 1, 4]]
    finally:
        pool.clear()


def test_inner_pool_defaults_to_a_share_of_the_cores() -> None:
    def inner_nodes(_: Any) -> int:
        return ProcessPool(id="share").nodes

    pool = make_pool("process")  # 2 workers: each one's share is half the cores
    try:
        assert pool.map(inner_nodes, [0]) == [max(1, cpu_count() // 2)]
        assert pool.map(lambda _: ProcessPool(3, id="explicit").nodes, [0]) == [3]  # an explicit nodes= is obeyed
        assert ProcessPool(id="share-outside").nodes == cpu_count()  # outside a worker: every core
    finally:
        pool.clear()


def test_maxtasksperchild_replaces_workers() -> None:
    pool = make_pool("process", maxtasksperchild=1)
    try:
        pids = pool.map(_cases.pid, range(6), chunksize=1)
        assert len(set(pids)) >= 3
    finally:
        pool.clear()


def test_max_worker_memory_recycles_workers() -> None:
    pool = make_pool("process", max_worker_memory=1)  # every worker is over 1 byte
    try:
        pids = pool.map(_cases.pid, range(6), chunksize=1)
        assert len(set(pids)) >= 3
        with pytest.raises(ValueError, match="max_worker_memory"):
            ProcessPool(2, max_worker_memory="lots")
    finally:
        pool.clear()


def test_no_leaks_after_clear_terminate_and_with() -> None:
    import threading

    before_children = {c.pid for c in children()}
    before_fds = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for ending in ("clear", "terminate", "with"):
        pool = make_pool("process")
        if ending == "with":
            with pool:
                pool.map(_cases.square, range(10))
        else:
            pool.map(_cases.square, range(10))
            getattr(pool, ending)()
            pool.clear()
    deadline = time.monotonic() + 5
    while {c.pid for c in children()} - before_children:
        assert time.monotonic() < deadline, "worker processes outlived their pool"
        time.sleep(0.05)
    assert not [t for t in threading.enumerate() if t.name == "pathos-manager"]
    if before_fds is not None:
        assert len(os.listdir("/proc/self/fd")) <= before_fds + 2


def test_no_process_outlives_the_interpreter() -> None:
    psutil = pytest.importorskip("psutil")
    script = (
        "from pathos.pools import ProcessPool, ThreadPool\n"
        "p = ProcessPool(2); print(*p.map(__import__('os').getpid, [()] * 0 or range(0)))\n"
        "import os\nprint(*set(p.map(lambda _: os.getpid(), range(10))), flush=True)\n"
        "ThreadPool(2).map(abs, [1])\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert pids
    time.sleep(0.2)
    assert not [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
