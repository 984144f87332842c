"""The process engine's per-batch machinery, piece by piece (issue 12, speed round two):
progress slots on cache lines of their own, the manager's joined writes, the worker's
own framing reader, and a worker measuring an unmeasured batch itself.

Each piece is tested for what it must keep doing (every byte in order, every message
whole, every result kept), not for speed: speed is the benchmarks' business.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import random
import threading
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

import pytest

from pathos._serialize import dumps
from pathos._workers import _main
from pathos._workers._main import SLOT_BYTES, SLOT_SIZE, _BatchRun, _Inbox, slot_view
from pathos._workers._process import COALESCE_BYTES, WorkerProcess
from pathos._workers._protocol import Partial, Run, decode

SEED = random.randrange(1 << 32)


def _frame(data: bytes, *, long_header: bool = False) -> bytes:
    """``multiprocessing.Connection`` framing, as the parent writes it."""
    if long_header:
        return b"\xff\xff\xff\xff" + len(data).to_bytes(8, "big") + data
    return len(data).to_bytes(4, "big") + data


def _unframe(raw: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(raw):
        size = int.from_bytes(raw[pos : pos + 4], "big", signed=True)
        out.append(raw[pos + 4 : pos + 4 + size])
        pos += 4 + size
    return out


def _address(view: Any) -> int:
    return ctypes.addressof(ctypes.c_char.from_buffer(view.cast("B")))


# -- progress slots -------------------------------------------------------------------
def test_slots_sit_on_cache_lines_of_their_own() -> None:
    """Two workers' slots come from one shared heap, which packs small blocks together:
    each slot must start on a 64-byte boundary and fit in its line, so no two workers
    (nor anything else in the heap) write to one line."""
    ctx = multiprocessing.get_context()
    blocks = [ctx.RawArray("b", SLOT_BYTES) for _ in range(8)]
    lines = set()
    for block in blocks:
        slot = slot_view(block)
        assert len(slot) == SLOT_SIZE
        start = _address(slot)
        assert start % 64 == 0
        assert (start + 8 * SLOT_SIZE - 1) // 64 == start // 64  # one line
        assert ctypes.addressof(block) <= start and start + 64 <= ctypes.addressof(block) + SLOT_BYTES
        lines.add(start // 64)
    assert len(lines) == len(blocks)


def test_a_worker_writes_the_slot_its_parent_reads() -> None:
    """The parent's view and the worker's view of a slot are the same memory, also when
    the block travels to a spawned process (the offset is recomputed there)."""
    ctx = multiprocessing.get_context("spawn")
    block = ctx.RawArray("b", SLOT_BYTES)
    slot = slot_view(block)
    process = ctx.Process(target=_write_slot, args=(block,))
    process.start()
    process.join(60)
    assert process.exitcode == 0
    assert list(slot) == [11, 22, 33][:SLOT_SIZE]


def _write_slot(block: Any) -> None:
    slot = slot_view(block)
    for i, value in enumerate((11, 22, 33)[:SLOT_SIZE]):
        slot[i] = value


# -- the manager's writes -------------------------------------------------------------
def test_queued_messages_arrive_whole_and_in_order_through_a_full_pipe() -> None:
    """Small messages queued together are joined into fewer writes; a pipe that fills
    midway keeps the rest queued, and every byte still arrives once, in order."""
    rng = random.Random(SEED)
    r, w = os.pipe()
    os.set_blocking(w, False)
    fake = SimpleNamespace(fd=w, outbox=deque())
    messages = [os.urandom(rng.choice((1, 7, 100, 5000, 70000, 200000))) for _ in range(300)]
    got = bytearray()
    for message in messages:
        WorkerProcess.send(fake, message, now=False)  # type: ignore[arg-type]
        if rng.random() < 0.1:
            WorkerProcess.flush(fake)  # type: ignore[arg-type]
    while WorkerProcess.flush(fake):  # type: ignore[arg-type]
        got += os.read(r, 1 << 20)
    os.close(w)
    while chunk := os.read(r, 1 << 20):
        got += chunk
    os.close(r)
    assert _unframe(bytes(got)) == messages, f"seed {SEED}"


def test_small_queued_messages_share_a_write() -> None:
    writes: list[int] = []
    r, w = os.pipe()
    fake = SimpleNamespace(fd=w, outbox=deque())
    for _ in range(50):
        WorkerProcess.send(fake, b"x" * 100, now=False)  # type: ignore[arg-type]
    real_write = os.write

    def counting_write(fd: int, data: Any) -> int:
        writes.append(len(data))
        return real_write(fd, data)

    os.write = counting_write  # type: ignore[assignment]
    try:
        assert not WorkerProcess.flush(fake)  # type: ignore[arg-type]
    finally:
        os.write = real_write  # type: ignore[assignment]
    assert writes == [50 * 104]
    assert COALESCE_BYTES >= 50 * 104
    os.close(w)
    assert _unframe(os.read(r, 1 << 20)) == [b"x" * 100] * 50
    os.close(r)


# -- the worker's reader --------------------------------------------------------------
@pytest.mark.parametrize("long_header", [False, True])
def test_the_worker_reads_every_message_however_the_bytes_are_cut(long_header: bool) -> None:
    """Messages cut anywhere across writes (headers too), several per read, and ones
    larger than a read, come out whole and in order; the end of the pipe is EOFError."""
    rng = random.Random(SEED)
    messages = [os.urandom(rng.choice((0, 1, 3, 4, 9, 1000, 65536, 70000, 300000))) for _ in range(120)]
    stream = b"".join(_frame(m, long_header=long_header and i % 3 == 0) for i, m in enumerate(messages))
    r, w = os.pipe()

    def writer() -> None:
        try:
            pos = 0
            while pos < len(stream):
                n = rng.choice((1, 2, 5, 4096, 65536, 100000))
                pos += os.write(w, stream[pos : pos + n])
        finally:
            os.close(w)  # the reader sees EOF, never a pipe that stays open and empty

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    inbox = _Inbox(r)
    got = [bytes(inbox.recv()) for _ in messages]
    with pytest.raises(EOFError):
        inbox.recv()
    thread.join(10)
    os.close(r)
    assert got == messages, f"seed {SEED}"


# -- a worker measuring an unmeasured batch ---------------------------------------------
def _spin(us: float) -> float:
    end = time.perf_counter() + us * 1e-6
    while time.perf_counter() < end:
        pass
    return us


class _Recorder:
    """Stands for the worker's connection: keeps what the batch sends ahead."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send_bytes(self, data: bytes) -> None:
        self.sent.append(decode(data))


def _run(items: list[Any], flush_after: float | None) -> tuple[_BatchRun, _Recorder]:
    conn = _Recorder()
    run = Run(7, 1, dumps((_spin, {}, False)), dumps(items), [], [], flush_after)
    batch = _BatchRun(conn, run, None, memoryview(bytearray(8 * SLOT_SIZE)).cast("q"))  # type: ignore[arg-type]
    old_pid = _main._worker_pid
    _main._worker_pid = os.getpid()  # _send() speaks only from the worker's own process
    try:
        reply = batch.run({}, [])
    finally:
        _main._worker_pid = old_pid
    assert not reply.errors
    return batch, conn


def test_an_unmeasured_batch_of_quick_items_stops_sending_ahead() -> None:
    """Sent before the parent measured the job, a batch of 2 µs items is measured by the
    worker at its first flush and runs on as quick items: one message ahead, not one per
    millisecond. Every result is there."""
    items = [2.0] * 4000  # about 8 ms of work
    batch, conn = _run(items, 0.001)
    partials = [m for m in conn.sent if isinstance(m, Partial)]
    assert len(partials) == 1
    assert batch.values == items
    assert batch.rest is None  # no reference to the arguments outlives the batch (shared memory)


def test_an_unmeasured_batch_of_slow_items_keeps_sending_ahead() -> None:
    """Items slower than the quick rule keep being sent ahead as they finish."""
    items = [2500.0] * 6  # 2.5 ms each
    batch, conn = _run(items, 0.001)
    partials = [m for m in conn.sent if isinstance(m, Partial)]
    assert sum(p.finished for p in partials) == 5  # all but the last, each before the next began
    assert batch.values == items


def test_a_timed_batch_sends_each_result_before_the_next_item() -> None:
    items = [1.0] * 50
    batch, conn = _run(items, 0.0)
    partials = [m for m in conn.sent if isinstance(m, Partial)]
    assert [p.finished for p in partials] == [1] * 49
    assert batch.values == items


# -- waking the engine --------------------------------------------------------------
@pytest.mark.parametrize("verb", ["map", "amap", "imap", "uimap"])
def test_a_call_with_its_input_known_wakes_the_engine_once(verb: str) -> None:
    """A wake-up costs the caller the time the engine's thread then holds the GIL: a
    call whose input is a list is queued whole, then the engine is woken once (it was
    woken twice: once for the empty job, once for its items). Empty input still ends."""
    from pathos.pools import ProcessPool

    pool = ProcessPool(nodes=2, id=f"wake-once-{verb}")
    try:
        pool.map(abs, [1, 2])  # workers up, engine running
        backend = pool._running_backend()  # type: ignore[attr-defined]
        calls = []
        real = backend._wake

        def counting_wake() -> None:
            calls.append(1)
            real()

        backend._wake = counting_wake
        try:
            out = getattr(pool, verb)(abs, [-1, -2, -3, -4])
            got = out.get(30) if verb == "amap" else sorted(out) if verb == "uimap" else list(out)
        finally:
            del backend._wake
        assert got == [1, 2, 3, 4]
        assert len(calls) == 1
        assert getattr(pool, verb)(abs, []) is not None
        assert list(pool.imap(abs, [])) == [] and pool.map(abs, []) == []
    finally:
        pool.terminate()
        pool.clear()


class _SlowToSend:
    """A result that takes 30 ms to serialize (as a large array into shared memory does)."""

    def __reduce__(self) -> Any:
        time.sleep(0.03)
        return (_SlowToSend, ())


def _make_slow(_: Any) -> _SlowToSend:
    return _SlowToSend()


def test_a_batch_time_includes_sending_its_results() -> None:
    """The parent sizes batches by the time a worker reports: it must include writing the
    results, or batches of heavy results come out too large (one worker gets most)."""
    run = Run(7, 1, dumps((_make_slow, {}, False)), dumps([1, 2]), [], [], None)
    batch = _BatchRun(_Recorder(), run, None, memoryview(bytearray(8 * SLOT_SIZE)).cast("q"))  # type: ignore[arg-type]
    reply = batch.run({}, [])
    assert not reply.errors
    assert reply.seconds >= 0.05  # two results, 30 ms each to serialize; the calls are instant
