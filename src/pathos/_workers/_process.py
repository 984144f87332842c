"""One worker process as the manager sees it: its pipe, its queue of batches, its exit."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import warnings
from collections import deque
from multiprocessing.connection import Connection
from typing import Any, Callable

from .._job import Batch
from ._main import SLOT_BATCH, SLOT_BYTES, SLOT_ITEM, SLOT_SINCE, run_worker, slot_view
from ._protocol import frame_at, take

__all__ = ["MAIN_GUARD_EXIT", "MAIN_GUARD_MESSAGE", "WorkerProcess", "exit_reason", "signal_name"]

READ_SIZE = 1 << 20
COALESCE_BYTES = 1 << 16  # small queued messages are joined into writes of up to this size
# A worker that finds itself creating a pool while it is still being started (a script
# that starts pools when imported, under spawn or forkserver) exits with this code.
MAIN_GUARD_EXIT = 86
MAIN_GUARD_MESSAGE = (
    "a worker process imported the main script, and the script started a pool while being imported: "
    "an attempt was made to start a new process before the current process finished its bootstrapping "
    "phase (the standard library's rule for the spawn and forkserver start methods). Put the code that "
    "creates and uses pools under `if __name__ == '__main__':`, or use context='fork'."
)

_forking = threading.local()  # .parent is our pid while this thread forks a worker
_PR_SET_PDEATHSIG = 1
_abandoned: list[Any] = []  # the stdin objects forked workers inherited, never touched again


def _fresh_stdin() -> None:
    """In a worker just forked: give it a stdin that no other thread holds.

    The parent has other threads, and one of them may be blocked reading ``sys.stdin``
    at the moment of the fork (``pathos map`` reads its input in the main thread while
    the manager thread forks workers), holding the lock of its buffer. That thread does
    not exist in the child, so the lock is never released there, and ``multiprocessing``
    closes ``sys.stdin`` before any of our code runs: the worker blocked forever, before
    even starting its parent-death watchdog. So the child gets /dev/null (which
    ``multiprocessing`` gives it anyway) as a new object; the inherited one is kept
    referenced, as closing or collecting it would take the lock.
    """
    _abandoned.append(sys.stdin)
    sys.stdin = open(os.devnull, encoding="utf-8")  # noqa: SIM115 - lives as long as the worker


_prctl_cache: list[Callable[..., int] | None] = []


def _prctl() -> Callable[..., int] | None:
    """Linux's ``prctl(2)``, looked up once, in the parent before it forks (importing
    ctypes in every new worker would add milliseconds to its start)."""
    if not _prctl_cache:
        prctl: Callable[..., int] | None = None
        if sys.platform.startswith("linux"):
            try:
                import ctypes

                prctl = ctypes.CDLL(None, use_errno=True).prctl
            except (OSError, AttributeError):  # pragma: no cover - an unusual libc
                prctl = None
        _prctl_cache.append(prctl)
    return _prctl_cache[0]


def _die_with_parent(parent: int) -> None:
    """Linux: have the kernel SIGKILL this worker when the thread that forked it ends.

    The watchdog thread of ``run_worker`` needs the GIL to act, which a task inside one
    long C call (``sum(range(10**12))``) never gives up, and it starts only once
    ``multiprocessing``'s bootstrap is done; the kernel needs neither. The thread that
    forks the workers is the pool's manager thread, which stops every worker before it
    ends, or the whole parent process, which dies with it.
    """
    prctl = _prctl()
    if prctl is None:
        return
    prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
    if os.getppid() != parent:  # it ended before the call above
        os._exit(1)


def _after_fork_in_child() -> None:
    parent = getattr(_forking, "parent", None)
    if parent is not None:
        _forking.parent = None  # a pool made inside the worker forks its own
        _die_with_parent(parent)
        _fresh_stdin()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class WorkerProcess:
    """A live worker, its pipe and outbox, its progress slot, and the batches sent to it
    (oldest, the running one, first).

    The manager never blocks on a worker: messages to it are framed into :attr:`outbox`
    and written without blocking as the pipe drains (:meth:`send` / :meth:`flush`), and
    its exit is watched through a pidfd where the system has one (a process the worker
    forked may hold the worker's pipe and sentinel open long after the worker died).
    """

    def __init__(self, ctx: Any, setup: bytes) -> None:
        _prctl()  # looked up here, so that a forked child finds it ready
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        self.slot_memory = ctx.RawArray("b", SLOT_BYTES)
        self.slot: Any = slot_view(self.slot_memory)  # int64s on a cache line of their own (see _main)
        self.slot[SLOT_BATCH] = -1
        self.process = ctx.Process(
            target=run_worker, args=(child_conn, setup, self.slot_memory), name="pathos-worker", daemon=False
        )
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a process with threads. Before its own
            # loop starts, a worker touches one lock another thread may hold: that of
            # sys.stdin, which multiprocessing closes; _fresh_stdin() takes care of it,
            # and _die_with_parent() of a parent that dies.
            warnings.simplefilter("ignore", DeprecationWarning)
            _prctl()
            _forking.parent = os.getpid()
            try:
                self.process.start()
            finally:
                _forking.parent = None
        child_conn.close()
        self.conn: Connection = parent_conn
        self.fd: int = parent_conn.fileno()
        os.set_blocking(self.fd, False)
        self.inbox = bytearray()  # bytes read from the pipe, not yet split into messages
        self.outbox: deque[memoryview] = deque()  # framed bytes not yet written
        self.pid: int = self.process.pid
        self.sentinel: int = self.process.sentinel
        self.pidfd: int = _pidfd_open(self.pid)  # -1 where there is none
        self.outstanding: deque[tuple[int, Batch]] = deque()
        self.base = 0  # items of the running batch already settled (Partial messages)
        self.ready = False  # the initializer finished
        self.started = time.monotonic()  # when the running batch began, roughly
        self.sent = 0  # batches sent, for maxtasksperchild
        self.known: set[int] = set()  # job keys whose function this worker holds
        self.forget: list[int] = []  # job keys to drop with the next message
        self.retiring = False  # send no more; stop once idle
        self.stopping = False  # Stop was sent
        self.stop_deadline = 0.0  # when a stopping worker is killed instead
        self.killed_for: BaseException | None = None  # the error its running item gets
        # (batch id, slot item) whose timeout decided the kill; see _process_events._settle_lost
        self.kill_target: tuple[int, int] | None = None
        self.generation = 0  # the backend's call counter when this worker was started

    # -- writing ------------------------------------------------------------------
    def send(self, data: bytes, *, now: bool = True) -> bool:
        """Queue one message (``multiprocessing.Connection`` framing) and, if ``now``,
        write what the pipe takes now; True if bytes are still waiting (wait for the
        pipe to be writable, or call :meth:`flush`)."""
        size = len(data)
        header = size.to_bytes(4, "big") if size <= 0x7FFFFFFF else b"\xff\xff\xff\xff" + size.to_bytes(8, "big")
        if size < 1 << 16:
            self.outbox.append(memoryview(header + data))
        else:
            self.outbox.append(memoryview(header))
            self.outbox.append(memoryview(data))
        return self.flush() if now else True

    def flush(self) -> bool:
        """Write queued bytes until the pipe is full; True if some are still waiting.

        Small messages queued together go out in one ``write`` (a syscall costs more
        than the copy that joins them): batches of one item each are mostly this.
        """
        outbox = self.outbox
        while outbox:
            if len(outbox) > 1 and len(outbox[0]) < COALESCE_BYTES:
                parts = [outbox.popleft()]
                size = len(parts[0])
                while outbox and size + len(outbox[0]) <= COALESCE_BYTES:
                    size += len(outbox[0])
                    parts.append(outbox.popleft())
                outbox.appendleft(memoryview(b"".join(parts)))
            view = outbox[0]
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                return True
            except OSError:  # it died: its exit is noticed through its pidfd or sentinel
                outbox.clear()
                return False
            if written < len(view):
                outbox[0] = view[written:]
                return True
            outbox.popleft()
        return False

    # -- reading ------------------------------------------------------------------
    def read_messages(self) -> list[bytes] | None:
        """Every complete message now readable, in one ``read``; None if nothing was.

        Messages use ``multiprocessing.Connection``'s framing (a 4-byte big-endian
        length, or -1 and an 8-byte length), as the worker sends them with
        ``send_bytes``.

        Raises:
            EOFError: the worker closed its end.
        """
        try:
            data = os.read(self.fd, READ_SIZE)
        except BlockingIOError:
            return None
        if not data:
            raise EOFError
        inbox = self.inbox
        inbox += data
        messages: list[bytes] = []
        pos = 0
        while (frame := frame_at(inbox, pos)) is not None and frame[0] + frame[1] <= len(inbox):
            start, size = frame
            messages.append(take(inbox, start, size))
            pos = start + size
        del inbox[:pos]
        return messages

    def running_offset(self) -> int | None:
        """Offset, in the running batch as it stands now, of the item the worker runs.

        None if it has not started that batch yet; -1 while it loads the batch.
        """
        if not self.outstanding:
            return None
        # The batch id first: the worker writes a new batch's id after resetting the
        # item, so the item read next belongs to that batch (or a later one, only while
        # the worker lives; a crash is read once the worker is dead).
        if self.slot[SLOT_BATCH] != self.outstanding[0][0]:
            return None
        item = self.slot[SLOT_ITEM]
        return -1 if item < 0 else int(item) - self.base

    def running_since(self) -> float | None:
        """When the running batch's current item (or its loading) began, if it has begun."""
        progress = self.progress()
        if progress is None:
            return None
        return progress[2]

    def progress(self) -> tuple[int, int, float] | None:
        """``(batch id, slot item, when it began)`` of the running batch, read consistently;
        None if the worker has not begun that batch.

        The worker writes the start time, then the item (then, for a new batch, its id).
        Reading the id and item on both sides of the time, and again if either moved, the
        time read is that of the item read, or a later one (the worker moved on but had
        not written the new item yet): a deadline computed from it is never too early.
        """
        if not self.outstanding:
            return None
        slot = self.slot
        for _ in range(1000):  # the worker writes three ints; a retry is nanoseconds
            batch, item = slot[SLOT_BATCH], slot[SLOT_ITEM]
            since = slot[SLOT_SINCE]
            if slot[SLOT_ITEM] == item and slot[SLOT_BATCH] == batch:
                break
        else:  # pragma: no cover - a worker moving on every few nanoseconds: read "now"
            since = time.monotonic_ns()
        if batch != self.outstanding[0][0]:
            return None
        return int(batch), int(item), float(since) / 1e9

    # -- ending -------------------------------------------------------------------
    @property
    def exit_fds(self) -> list[int]:
        """What to watch for its exit: its pidfd, else its sentinel."""
        return [self.pidfd] if self.pidfd >= 0 else [self.sentinel]

    def kill(self) -> None:
        try:
            self.process.kill()
        except Exception:  # pragma: no cover - already gone
            pass

    def reap(self, timeout: float = 1.0) -> int | None:
        """Its exit code, waiting at most ``timeout`` seconds for it to exit.

        Polls instead of ``Process.join()``, which waits on the sentinel: a process the
        worker forked may keep that open long after the worker is gone.
        """
        deadline = time.monotonic() + timeout
        delay = 0.0005
        while True:
            exitcode: int | None = self.process.exitcode
            if exitcode is not None or time.monotonic() >= deadline:
                return exitcode
            time.sleep(delay)
            delay = min(delay * 2, 0.02)

    def close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self.outbox.clear()
        try:
            self.conn.close()
        except OSError:  # pragma: no cover
            pass
        try:
            self.process.close()
        except ValueError:  # still running: leave it to the registry's exit hook
            pass


def _pidfd_open(pid: int) -> int:
    """A pidfd for ``pid`` (readable once it exits), or -1 where the system has none."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return -1
    try:
        fd: int = pidfd_open(pid)
    except OSError:  # an old kernel, or a sandbox that forbids it
        return -1
    return fd


def signal_name(exitcode: int | None) -> str | None:
    if exitcode is None or exitcode >= 0:
        return None
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def exit_reason(exitcode: int | None) -> str:
    """How a worker ended, and what likely caused it, for an error message."""
    name = signal_name(exitcode)
    if name == "SIGKILL":
        return (
            "was killed by SIGKILL; the usual cause is running out of memory (the "
            "out-of-memory killer sends SIGKILL), else another process killed it"
        )
    if name == "SIGSEGV":
        return "crashed with a segmentation fault (SIGSEGV), usually a bug in a C extension"
    if name is not None:
        return f"was killed by {name}"
    if exitcode is None:
        return "stopped answering"
    return f"exited with code {exitcode} (os._exit(), sys.exit() or a fatal error in the task)"
