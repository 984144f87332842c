"""The loop a worker process runs: receive a batch, run it, send the results back.

The messages are those of :mod:`pathos._workers._protocol`, read by :class:`_Inbox`
(large reads, split here). Besides its pipe, each worker has a *progress slot*: three
int64s in memory shared with the parent (``[batch id, offset of the running item, when
it started]``), on a cache line of its own, written before each item. The parent reads
it only when it needs to: when the worker dies (which item killed it, so only that item
fails and the items after it, which never ran, are run again), and for ``timeout=``
(each item's own clock). Writing it, with the ``enumerate`` that counts the items, is
what a quick item costs over a bare ``list(map(f, items))``: about 25 ns (for ``x + 1``,
a call of about 35 ns). That is the price of knowing the culprit of a crash exactly.

Items that finished are sent ahead in :class:`Partial` messages when the parent asks
(``Run.flush_after`` is not None: the job's items are slow, timed or not measured yet),
at most every ``flush_after`` seconds, and always before an ``os._exit()`` called by a
task: a crash later in the batch then loses no result that was already computed, so
nothing runs twice. (Items measured to be quick are not sent ahead: after a crash by a
signal, those of the batch that had finished run again, a few milliseconds of work. A
batch sent before the parent measured the job is measured by the worker as it runs, and
once its items average under ``CAREFUL_ITEM_SECONDS`` it runs on as quick items.)

The worker maps the parent's argument segments for one batch and unmaps them after;
``kept`` names those it could not unmap because the function kept an argument (see
:mod:`pathos._shm`). Result ``segments`` are new files the parent takes over.
"""

from __future__ import annotations

import functools
import os
import pickle
import signal
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, NoReturn

from .. import _shm
from .._serialize import loads
from ._protocol import (
    CAREFUL_ITEM_SECONDS,
    ITEM_ERRORS,
    BatchReply,
    Declined,
    Done,
    InitError,
    Partial,
    Ready,
    Run,
    decode,
    dump_values,
    encode,
    error_payload,
    frame_at,
    not_started,
    take,
)

__all__ = [
    "SLOT_BATCH",
    "SLOT_BYTES",
    "SLOT_ITEM",
    "SLOT_SINCE",
    "SLOT_SIZE",
    "cpu_budget",
    "error_payload",
    "run_worker",
    "slot_view",
]

Slot = Any  # a memoryview of int64s: [batch id, item offset, time.monotonic_ns() it began]

# The progress slot's fields (int64 each; an int store is the cheapest per item).
SLOT_BATCH, SLOT_ITEM, SLOT_SINCE, SLOT_SIZE = 0, 1, 2, 3
LOADING = -1  # SLOT_ITEM while the batch's function and arguments are being loaded
# Each worker's slot has a cache line of its own. The slots come from multiprocessing's
# shared heap, which packs small blocks next to each other: two workers' slots in one
# 64-byte line made every per-item store of one worker evict the line from the other's
# core (false sharing), which cost more than the store itself (measured: the workers of
# a 100k-item map of ``x + 1`` used 10.0 ms of CPU instead of 7.6 ms). So the block is
# over-allocated and the slot starts at the first line boundary inside it.
_LINE = 64
SLOT_BYTES = 8 * SLOT_SIZE + 2 * _LINE  # what to allocate for one slot


def slot_view(memory: Any) -> Slot:
    """The int64 slot inside ``memory`` (a block of ``SLOT_BYTES``), on its own cache line.

    Parent and worker compute the same offset: the heap's arenas are page-aligned mappings,
    so an address's offset within a line is the same in every process that maps it.
    """
    import ctypes

    offset = -ctypes.addressof(memory) % _LINE
    return memoryview(memory).cast("B")[offset : offset + 8 * SLOT_SIZE].cast("q")


# How many cores a pool created inside this worker may use by default (see _config).
_cpu_budget: int | None = None
_worker_pid = 0  # this worker's pid: a process a task forks must not speak for it
_forked = False  # set in a child that a task forked with os.fork() (cheaper than getpid(): a syscall)
_running: _BatchRun | None = None  # the batch being run, for the os._exit() hook
_real_exit = os._exit


def cpu_budget() -> int | None:
    """Cores left to a pool created inside this worker, or None outside workers."""
    return _cpu_budget


_dump_values = dump_values  # the old private name, until every caller imports _protocol


def _watch_parent(owner: int) -> None:
    """Exit at once if the parent process dies, so no worker is ever orphaned.

    On Linux a forked worker is also killed by the kernel (see
    ``_process._die_with_parent``), which works even while a task keeps the GIL.
    """
    from multiprocessing import process
    from multiprocessing.connection import wait

    parent = process.parent_process()
    if parent is None:  # pragma: no cover - not started by multiprocessing
        return
    wait([parent.sentinel])
    if _shm.available():  # the parent cannot unlink its shared memory any more: do it for it
        _shm.discard_prefix(f"pathos-{owner}-")
    _real_exit(1)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: peak RSS is the best we have
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def run_worker(conn: Connection, setup: bytes, slot_memory: Any = None) -> None:
    """Entry point of a worker process.

    Args:
        conn: its end of the duplex pipe to the parent.
        setup: the serialized ``(initializer, initargs, max_memory, cpu_budget, owner)``.
        slot_memory: the shared progress slot (a ``RawArray`` of bytes), or None.
    """
    global _cpu_budget, _worker_pid, _running, _forked
    _worker_pid = os.getpid()
    _forked = False  # a worker of a pool created in a worker inherits its parent's flag
    os.register_at_fork(after_in_child=_mark_forked)
    _running = None  # a worker forked by a pool inside a worker inherits its parent's
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    initializer, initargs, max_memory, _cpu_budget, owner = loads(setup)
    threading.Thread(target=_watch_parent, args=(owner,), name="pathos-parent-watch", daemon=True).start()
    if initializer is not None:
        try:
            initializer(*initargs)
        except Exception as exc:
            conn.send_bytes(encode(InitError(error_payload(exc))))
            return
    slot = slot_view(slot_memory) if slot_memory is not None else _private_slot()
    os._exit = _exit_hook  # a task's os._exit() first sends what the batch finished
    conn.send_bytes(encode(Ready(os.getpid())))
    try:
        prefix = f"pathos-{owner}-{os.getpid()}" if _shm.available() else None
        _serve(conn, max_memory, prefix, slot)
    finally:
        from .._registry import shutdown_all

        shutdown_all()  # pools the user's functions created in this worker


def _private_slot() -> Slot:
    return memoryview(bytearray(8 * SLOT_SIZE)).cast("q")


class _Inbox:
    """Messages from the parent, read from the pipe in large reads.

    ``Connection.recv_bytes`` makes two ``read`` calls per message (its length, then its
    body); batches of one item each are small messages that arrive several to a write,
    so reading what is there and splitting it here saves most of those syscalls. The
    framing is ``Connection``'s (what the parent's outbox writes): a 4-byte big-endian
    length, or -1 and an 8-byte length.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buffer = bytearray()
        self.pos = 0

    def recv(self) -> bytes:
        """The next message, waiting for it. Raises ``EOFError`` when the parent closed the pipe."""
        while True:
            message = self._next()
            if message is not None:
                return message
            self._fill()

    def _next(self) -> bytes | None:
        frame = frame_at(self.buffer, self.pos)
        if frame is None:
            return None
        start, size = frame
        if start + size > len(self.buffer):
            if size > _READ:  # a large message: read the rest straight into its own buffer
                return self._read_large(start, size)
            return None
        self.pos = start + size
        return take(self.buffer, start, size)

    def _fill(self) -> None:
        data = os.read(self.fd, _READ)
        if not data:
            raise EOFError
        if self.pos:
            del self.buffer[: self.pos]
            self.pos = 0
        self.buffer += data

    def _read_large(self, start: int, size: int) -> bytes:  # a bytearray: no second copy of a large message
        message = bytearray(size)
        got = len(self.buffer) - start
        message[:got] = self.buffer[start:]
        self.buffer, self.pos = bytearray(), 0
        view = memoryview(message)
        while got < size:
            n = os.readv(self.fd, [view[got:]])
            if not n:
                raise EOFError
            got += n
        return message  # type: ignore[return-value]  # pickle.loads reads a bytearray as it does bytes


_READ = 1 << 16  # bytes asked for by one read of the parent's pipe


def _serve(conn: Connection, max_memory: int | None, prefix: str | None, slot: Slot) -> None:
    functions: dict[int, tuple[Callable[..., Any], dict[str, Any], bool]] = {}
    declining = False  # over the memory limit: hand queued batches back, unrun
    inbox = _Inbox(conn.fileno())
    while True:
        try:
            message = decode(inbox.recv())
        except (EOFError, OSError):
            return
        if not isinstance(message, Run):  # Stop
            return
        if declining:
            _send(conn, Declined(message.batch_id))
            continue
        slot[SLOT_SINCE] = time.monotonic_ns()
        slot[SLOT_ITEM] = LOADING
        slot[SLOT_BATCH] = message.batch_id
        for old in message.forget:
            functions.pop(old, None)
        handles: list[Any] = []
        batch = _BatchRun(conn, message, prefix, slot)
        reply = batch.run(functions, handles)
        kept = _shm.unmap_segments(handles) if handles else []
        over = max_memory is not None and _rss_bytes() > max_memory
        declining = over
        names = batch.writer.names if batch.writer is not None else []
        _send(conn, Done(message.batch_id, reply.values, names, reply.errors, reply.seconds, over, kept))


def _send(conn: Connection, message: Any) -> None:
    """Send ``message`` to the parent, unless this is a process a task forked (which must
    never speak on the worker's pipe: it ends here instead)."""
    if os.getpid() != _worker_pid:
        _forked_child_returned()
    conn.send_bytes(encode(message))


def _mark_forked() -> None:
    """In a child forked by a task: flag it, and empty the items left to the quick loop
    (in the child's copy only), so that a child that returns into the worker's loop runs
    no other item; it then ends at its first message (:func:`_send`)."""
    global _forked
    _forked = True
    batch = _running
    if batch is not None and batch.rest is not None:
        batch.rest.clear()  # the loop's iterator sees an empty list: it stops


def _forked_child_returned() -> NoReturn:
    try:
        sys.stderr.write(
            f"pathos: process {os.getpid()}, forked by a task in worker {_worker_pid}, returned into the "
            "worker's loop; it exits now. End a process you fork in a task with os._exit().\n"
        )
        sys.stderr.flush()
    finally:
        _real_exit(0)


def _exit_hook(status: int) -> NoReturn:
    """``os._exit`` in a worker: send the running batch's finished results first."""
    batch = _running
    if batch is not None and os.getpid() == _worker_pid:
        try:
            batch.flush(len(batch.values))  # the items before the one calling os._exit()
        except BaseException:  # exiting anyway; the parent runs the unsent items again
            pass
    _real_exit(status)


class _BatchRun:
    """One batch as the worker runs it: loads it, runs its items, sends finished ones ahead."""

    def __init__(self, conn: Connection, run: Run, prefix: str | None, slot: Slot) -> None:
        self.conn, self.run_msg, self.prefix, self.slot = conn, run, prefix, slot
        self.writer = _shm.BufferWriter(prefix) if prefix else None
        self.values: list[Any] = []
        self.errors: dict[int, BaseException] = {}
        self.sent = 0  # items already sent in Partial messages
        self.rest: list[Any] | None = None  # the list the quick loop iterates (see _mark_forked)

    def run(
        self, functions: dict[int, tuple[Callable[..., Any], dict[str, Any], bool]], handles: list[Any]
    ) -> BatchReply:
        """Load and run the batch; ``handles`` receives the argument mappings to close afterwards."""
        run = self.run_msg
        try:
            if run.fn is not None:
                functions[run.key] = loads(run.fn)
            fn, kwargs, star = functions[run.key]
            if run.segments:
                buffers, mapped = _shm.map_segments(run.segments)
                handles.extend(mapped)
                items = pickle.loads(run.items, buffers=buffers)
                del buffers
            else:
                items = loads(run.items)
        except Exception as exc:  # could not rebuild the function or the arguments here
            return not_started(exc)
        global _running
        _running = self
        start = time.perf_counter()
        try:
            if run.flush_after is not None:
                self._run_careful(fn, items, star, kwargs, run.flush_after)
            else:
                self._run_quick(fn, items, star, kwargs)
        finally:
            _running = None
            # The arguments must go with this frame: an array mapped from the parent's
            # shared memory that is still referenced keeps its segment from being unmapped
            # and reused ("kept"), and every later batch then needs a new one.
            self.rest = None
        values = self.values[self.sent :] if self.sent else self.values
        sent = self.sent
        errors = [(offset - sent, error_payload(exc)) for offset, exc in self.errors.items() if offset >= sent]
        data = dump_values(values, errors, self.writer)
        # The batch's time includes writing its results (a large array into shared memory
        # costs more than making it): the parent sizes batches by it, and batches of heavy
        # results sized by the function's time alone came out too large for the balance.
        return BatchReply(data, errors, time.perf_counter() - start)

    def _run_quick(
        self, fn: Callable[..., Any], items: list[Any], star: bool, kwargs: dict[str, Any], start: int = 0
    ) -> None:
        """Items measured to be quick, from offset ``start``: one store per item (which
        item runs, for a crash), nothing sent ahead. The store and ``enumerate`` are
        the whole cost over a bare ``list(map(fn, items))``: about 25 ns an item."""
        slot, values, errors = self.slot, self.values, self.errors
        append = values.append
        n, i = len(items), start
        while i < n:
            rest = self.rest = items[i:] if i else items
            try:
                if star:
                    for j, args in enumerate(rest, i):
                        slot[1] = j  # SLOT_ITEM (a literal: this line runs once per item)
                        append(fn(*args, **kwargs))
                elif kwargs:
                    for j, arg in enumerate(rest, i):
                        slot[1] = j
                        append(fn(arg, **kwargs))
                else:
                    for j, arg in enumerate(rest, i):
                        slot[1] = j
                        append(fn(arg))
                return
            except ITEM_ERRORS as exc:
                i = len(values)  # the item that raised
                errors[i] = exc
                append(None)
                i += 1

    def _run_careful(
        self, fn: Callable[..., Any], items: list[Any], star: bool, kwargs: dict[str, Any], flush_after: float
    ) -> None:
        """Slow, timed or unmeasured items: finished ones are sent ahead every
        ``flush_after`` s (0: before each item, whose start time is then recorded too:
        its own ``timeout=`` clock).

        A batch sent unmeasured (``flush_after`` > 0) is measured here as it runs: once
        its items average under :data:`CAREFUL_ITEM_SECONDS` (the parent's own rule for
        quick items), at the first flush, the rest of it runs as quick items do.
        """
        slot, values, errors = self.slot, self.values, self.errors
        append = values.append
        monotonic_ns = time.monotonic_ns
        flush_ns = int(flush_after * 1e9)
        each = flush_ns == 0  # each item flushed and timed
        call: Callable[[Any], Any]
        if star:
            call = (lambda args: fn(*args, **kwargs)) if kwargs else (lambda args: fn(*args))
        else:
            call = functools.partial(fn, **kwargs) if kwargs else fn
        begun = last = monotonic_ns()
        quick_ns = CAREFUL_ITEM_SECONDS * 1e9
        for i, args in enumerate(items):
            now = monotonic_ns()
            if now - last >= flush_ns and i > self.sent:
                self.flush(i)
                if not each and now - begun < i * quick_ns:  # measured quick: run the rest so
                    self._run_quick(fn, items, star, kwargs, i)
                    return
                last = now = monotonic_ns()
            if each:
                slot[SLOT_SINCE] = now
            slot[SLOT_ITEM] = i
            try:
                append(call(args))
            except ITEM_ERRORS as exc:
                errors[i] = exc
                append(None)
            if _forked:  # the task forked (os.fork), and this is the child
                _forked_child_returned()

    def flush(self, upto: int) -> None:
        """Send the results of items ``sent .. upto - 1`` ahead of the batch's end."""
        if upto <= self.sent:
            return
        sent = self.sent
        values = self.values[sent:upto]
        errors = [(offset - sent, error_payload(exc)) for offset, exc in self.errors.items() if sent <= offset < upto]
        writer = _shm.BufferWriter(self.prefix) if self.prefix else None
        data = dump_values(values, errors, writer)
        names = writer.names if writer is not None else []
        _send(self.conn, Partial(self.run_msg.batch_id, upto - sent, data, names, errors))
        self.sent = upto
