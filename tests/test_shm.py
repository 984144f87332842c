"""Large buffers go through shared memory, arrive writable, and never leak."""

from __future__ import annotations

import os
import signal
import time
from typing import Any

import pytest

from pathos import WorkerCrashedError, _shm

from .conftest import make_pool

np = pytest.importorskip("numpy")
pytestmark = pytest.mark.skipif(not _shm.available(), reason="no /dev/shm here")


def ours() -> set[str]:
    return {n for n in os.listdir(_shm.SHM_DIR) if n.startswith(f"pathos-{os.getpid()}-")}


def none_left(seconds: float = 5.0) -> bool:
    """True once no file of ours is left (an idle pool unlinks its free segments soon after)."""
    deadline = time.monotonic() + seconds
    while ours():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


_KEPT: list[Any] = []


def keep(a: Any) -> list[float]:
    _KEPT.append(a)  # the worker keeps a reference to its argument
    return [float(k[0]) for k in _KEPT]


def scale(a: Any) -> Any:
    a *= 2  # arguments arrive writable, and the caller's copy is untouched
    return a


def make(i: int) -> Any:
    return np.full(400_000, float(i))


def kill_with_array(a: Any) -> Any:
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.fixture
def pool() -> Any:
    p = make_pool("process")
    yield p
    p.terminate()
    p.clear()


def test_large_arrays_both_ways(pool: Any) -> None:
    arrays = [np.arange(300_000, dtype=float) + i for i in range(6)]
    out = pool.map(scale, arrays)
    assert all((o == 2 * a).all() for o, a in zip(out, arrays))
    assert arrays[0][1] == 1.0
    made = pool.map(make, range(4))
    assert [m[0] for m in made] == [0.0, 1.0, 2.0, 3.0] and made[0].flags.writeable
    assert none_left()


def test_small_arrays_stay_in_the_pipe(pool: Any) -> None:
    assert pool.map(lambda a: a.sum(), [np.ones(10)]) == [10.0]


def test_no_leak_when_a_worker_dies_holding_arrays(pool: Any) -> None:
    with pytest.raises(WorkerCrashedError):
        pool.map(kill_with_array, [np.zeros(300_000)])
    assert pool.map(make, [1])[0][0] == 1.0
    assert none_left()


def test_an_argument_the_function_keeps_is_never_overwritten() -> None:
    pool = make_pool("process", nodes=1)
    try:
        arrays = [np.full(300_000, float(i)) for i in range(6)]
        assert pool.map(keep, arrays, chunksize=1)[-1] == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0]
    finally:
        pool.clear()
    assert none_left()


def test_segments_are_reused_and_trimmed() -> None:
    segments = _shm.SegmentPool(f"pathos-{os.getpid()}-t")
    first = segments.put(memoryview(b"a" * 3_000_000))
    assert first.mm[:3] == b"aaa" and first.used == 3_000_000
    segments.give_back([first])
    again = segments.put(memoryview(b"b" * 2_500_000))  # the same size class: the same file
    assert again.name == first.name and again.used == 2_500_000 and again.mm[:3] == b"bbb"
    segments.give_back([again], kept={again.name})  # a worker still maps it: retired
    assert not segments.holding and not ours()
    other = segments.put(memoryview(bytes(5_000_000)))
    segments.give_back([other])
    assert segments.holding
    segments.trim()
    assert not ours()


def test_buffer_writer_round_trip() -> None:
    import pickle

    writer = _shm.BufferWriter(f"pathos-{os.getpid()}-t")
    data = pickle.dumps(np.ones(200_000), protocol=5, buffer_callback=writer)
    assert len(writer.names) == 1 and len(data) < 1000
    back = pickle.loads(data, buffers=_shm.load_buffers(writer.names))
    assert back.sum() == 200_000.0 and not ours()


def test_files_of_a_killed_process_are_removed() -> None:
    """What the first process pool of a process does: a dead owner's files go, a live one's stay."""
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=30)
    dead = os.path.join(_shm.SHM_DIR, f"pathos-{gone.pid}-p-0")
    alive = os.path.join(_shm.SHM_DIR, f"pathos-{os.getpid()}-p-test")
    try:
        for path in (dead, alive):
            with open(path, "wb") as f:
                f.write(b"left behind")
        _shm.discard_orphans()
        assert not os.path.exists(dead) and os.path.exists(alive)
    finally:
        _shm.discard([os.path.basename(dead), os.path.basename(alive)])
