"""``pathos.pools._clear()`` is bounded: a stuck task cannot hold it up (it is
terminated after ``CLEAR_JOIN_SECONDS``, as ``terminate()`` would)."""

from __future__ import annotations

import threading
import time

import pytest

from pathos import PoolClosedError, pools
from pathos.pools import ProcessPool

from . import _cases
from .conftest import TIMEOUT


def test_clear_of_every_pool_returns_despite_a_stuck_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pools, "CLEAR_JOIN_SECONDS", 0.5)
    pool = ProcessPool(1, id="clear-bounded-stuck")
    pid = pool.pipe(_cases.pid)
    backend = pool._serve()
    stuck = pool.apipe(time.sleep, 3600)  # never finishes on its own
    cleared = threading.Thread(target=pools._clear, args=(ProcessPool,), name="test-clear", daemon=True)
    cleared.start()
    cleared.join(TIMEOUT)
    try:
        assert not cleared.is_alive(), "_clear() waited for a stuck task"
        with pytest.raises(PoolClosedError):
            stuck.get(TIMEOUT)
        assert pool._id not in ProcessPool.__state__
        _assert_gone(pid)
    finally:
        backend.terminate()  # a no-op unless the test failed: the stuck worker must not outlive it
        backend.join(TIMEOUT)


def _assert_gone(pid: int) -> None:
    psutil = pytest.importorskip("psutil")
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.02)
    pytest.fail(f"worker {pid} still runs after _clear()")
