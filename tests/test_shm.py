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


def _mapped_segments(pid: int) -> list[str]:
    """The parent's argument segments that process ``pid`` maps (deleted files included)."""
    with open(f"/proc/{pid}/maps") as f:
        return [line for line in f if f"/pathos-{os.getpid()}-p-" in line]


def first(a: Any) -> float:
    return float(a[0])


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs /proc")
def test_a_worker_forked_later_does_not_hold_argument_segments() -> None:
    """A worker forked while the parent holds free segments must not inherit their
    mappings: the pages would stay allocated for its whole life after the parent
    unlinks them (memory that no trim can give back)."""
    pool = make_pool("process", nodes=1, context="fork")
    try:
        arrays = [np.full(300_000, float(i)) for i in range(4)]
        assert pool.map(first, arrays) == [0.0, 1.0, 2.0, 3.0]
        with pytest.raises(WorkerCrashedError):
            pool.map(kill_with_array, [1])  # its replacement is forked while the segments are free
        (worker,) = set(pool.map(_pid, [0, 1]))
        assert none_left()  # the parent unlinked its free segments ...
        assert _mapped_segments(worker) == []  # ... and no worker keeps their pages alive
    finally:
        pool.terminate()
        pool.clear()


def _pid(_: Any) -> int:
    return os.getpid()


def test_large_bytes_sees_arrays_and_starred_arguments() -> None:
    big = np.zeros(300_000)
    assert _shm.large_bytes(big) == big.nbytes
    assert _shm.large_bytes((big, 3, "x", big)) == 2 * big.nbytes
    assert _shm.large_bytes(bytearray(2 << 20)) == 2 << 20
    assert _shm.large_bytes(np.zeros(10)) == 0  # small buffers stay in the pipe
    assert _shm.large_bytes(bytes(2 << 20)) == 0  # bytes are pickled in the stream
    assert _shm.large_bytes(7) == _shm.large_bytes("text") == _shm.large_bytes({"a": big}) == 0
    assert _shm.large_bytes(np.zeros(300_000, dtype="datetime64[ns]")) == 0  # memoryview refuses it


def test_a_batch_of_arrays_memoryview_refuses_still_runs(pool: Any) -> None:
    dates = [np.full(300_000, i, dtype="datetime64[ns]") for i in range(6)]
    assert pool.map(first, dates) == [float(d[0].astype("int64")) for d in dates]


def test_many_large_arguments_fill_few_segments_over_and_over() -> None:
    """Batches of large arguments are cut small and queued shallow, so their segments
    come back for reuse during the call: 40 arrays do not need 40 new files."""
    shared = _shm.shared_pool()
    shared.trim()
    before = shared.created
    pool = make_pool("process", nodes=2)
    try:
        arrays = [np.full(300_000, float(i)) for i in range(40)]
        assert pool.map(first, arrays) == [float(i) for i in range(40)]
        # At most SHM_DEPTH (1) batch per worker plus one waiting, each of 8 MiB / 2.4 MB = 3 items.
        assert shared.created - before <= 9
    finally:
        pool.clear()
    assert none_left()


def test_the_next_pool_reuses_the_segments_of_the_last() -> None:
    """Free segments belong to the process: a pool started right after another finds
    them (a ``with ProcessPool() as p:`` loop), and they still go once unused a while."""
    shared = _shm.shared_pool()
    arrays = [np.full(300_000, float(i)) for i in range(4)]
    pool = make_pool("process", nodes=1)
    try:
        pool.map(first, arrays, chunksize=1)
    finally:
        pool.clear()
    made = shared.created
    pool = make_pool("process", nodes=1)
    try:
        assert pool.map(first, arrays, chunksize=1) == [0.0, 1.0, 2.0, 3.0]
    finally:
        pool.clear()
    assert shared.created == made
    assert none_left()


def test_segments_are_unlinked_at_exit(tmp_path: Any) -> None:
    """A process that exits right after a call, before its idle segments are trimmed,
    leaves no file behind (nor those its pools give back while exiting)."""
    import subprocess
    import sys
    import textwrap

    script = tmp_path / "exits.py"
    script.write_text(
        textwrap.dedent(
            """
            import os
            import numpy as np
            from pathos.pools import ProcessPool
            if __name__ == "__main__":
                arrays = [np.full(300_000, float(i)) for i in range(8)]
                pool = ProcessPool(2)
                pool.map(len, arrays)
                pool.amap(len, arrays)  # still in flight at exit, maybe
                print(os.getpid())
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (_src(), os.environ.get("PYTHONPATH")) if p))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    pid = done.stdout.split()[-1]
    assert not [n for n in os.listdir(_shm.SHM_DIR) if n.startswith(f"pathos-{pid}-")]


def _src() -> str:
    import pathos

    return os.path.dirname(os.path.dirname(pathos.__file__))


def test_a_forked_child_starts_with_no_segments() -> None:
    shared = _shm.shared_pool()
    segment = shared.put(memoryview(bytes(3_000_000)))
    shared.give_back([segment])
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        ok = _shm.shared_pool() is not shared and not _shm.shared_pool().holding
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(child, 0)
        shared.trim()
