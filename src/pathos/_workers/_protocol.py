"""The wire protocol between an engine and its workers, and the batch-running body they share.

Both the process engine (``_workers/_main.py`` in the worker, ``_backends/process.py``
in the parent) and the Dask engine (``_workers/_dask.py`` on a Dask worker,
``_backends/dask.py`` in the caller) run batches the same way and report them in the
same shape. This module is that shape, written once:

- typed messages (``NamedTuple``\\ s, sent by :func:`encode` as plain tuples; the objects they carry
  travel as bytes made by :mod:`pathos._serialize`, so a bad object fails one batch,
  never the loop);
- :func:`error_payload` / :func:`rebuild_error`: an exception out and back in, same type
  and arguments, its remote traceback as ``__cause__``;
- :func:`run_items`, :func:`dump_values`, :func:`run_loaded`: the body that runs a batch;
- :func:`items_label`, :func:`timeout_error`, :func:`expect_batch`: facts for messages.

parent -> worker (process engine)::

    Run(batch_id, key, fn, items, segments, forget, flush_after)
    Stop()

worker -> parent::

    Ready(pid)                    the initializer ran; batches may come
    InitError(error)              the initializer raised; the worker exits
    Partial(batch_id, finished, values, segments, errors)
                                  the next ``finished`` items of the running batch are
                                  finished (sent so a crash later in the batch loses
                                  nothing that already ran)
    Done(batch_id, values, segments, errors, seconds, over, kept)
                                  the rest of the batch
    Declined(batch_id)            over its memory limit: the batch was not run

Offsets in ``errors`` count from the first item the message covers. ``segments`` name
shared-memory files holding large result buffers, which the parent takes over;
``kept`` names argument segments the worker could not unmap (see :mod:`pathos._shm`).
An offset of :data:`NOT_STARTED` means the batch could not start (the function or the
arguments would not load); its payload is that error.
"""

from __future__ import annotations

import pickle
import time
import traceback
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Union

from .._errors import PathosError, RemoteError, RemoteTraceback, TaskTimeoutError
from .._serialize import dumps, loads

if TYPE_CHECKING:
    from .._job import Batch

__all__ = [
    "CAREFUL_ITEM_SECONDS",
    "NOT_STARTED",
    "BatchReply",
    "Declined",
    "Done",
    "ErrorPayload",
    "FromWorker",
    "InitError",
    "Partial",
    "ProtocolError",
    "Ready",
    "Run",
    "Stop",
    "ToWorker",
    "decode",
    "dump_values",
    "encode",
    "error_payload",
    "expect_batch",
    "frame_at",
    "items_label",
    "load_values",
    "not_started",
    "rebuild_error",
    "run_items",
    "run_loaded",
    "take",
    "timeout_error",
]

# (exception bytes or None, "module.QualName", str(exc), formatted traceback)
ErrorPayload = tuple[Union[bytes, None], str, str, str]
ItemErrors = list[tuple[int, ErrorPayload]]
NOT_STARTED = -1  # the offset of an error that kept a whole batch from starting
# Items measured faster than this are *quick*: they run without sending finished results
# ahead (the parent's rule for a measured job, and the worker's for a batch it measures).
CAREFUL_ITEM_SECONDS = 20e-6


# -- parent -> worker ---------------------------------------------------------------
class Run(NamedTuple):
    """Run a batch.

    Attributes:
        batch_id: names the batch in the worker's replies.
        key: names the job's function in the worker's cache.
        fn: the serialized ``(fn, kwargs, star)``, the first time a worker sees ``key``.
        items: the serialized argument list.
        segments: ``(name, nbytes)`` of argument buffers in shared memory.
        forget: keys of finished jobs whose functions the worker may drop.
        flush_after: None for items measured to be quick: the worker only records
            which item runs (sending finished items ahead would cost more than it
            saves). Otherwise the worker also records when each item starts (its
            ``timeout=`` clock) and, before starting an item, sends the finished ones
            ahead in a :class:`Partial` if ``flush_after`` seconds have passed since it
            last did (0: before every item), so a crash loses none of them.
    """

    batch_id: int
    key: int
    fn: bytes | None
    items: bytes
    segments: list[tuple[str, int]]
    forget: list[int]
    flush_after: float | None = None


class Stop(NamedTuple):
    """Finish: exit once the current batch is done."""


ToWorker = Union[Run, Stop]


# -- worker -> parent ---------------------------------------------------------------
class Ready(NamedTuple):
    pid: int


class InitError(NamedTuple):
    error: ErrorPayload


class Partial(NamedTuple):
    batch_id: int
    finished: int
    values: bytes
    segments: list[str]
    errors: ItemErrors


class Done(NamedTuple):
    batch_id: int
    values: bytes
    segments: list[str]
    errors: ItemErrors
    seconds: float
    over: bool
    kept: list[str]


class Declined(NamedTuple):
    batch_id: int


FromWorker = Union[Ready, InitError, Partial, Done, Declined]


_KINDS: tuple[type[Any], ...] = (Run, Stop, Ready, InitError, Partial, Done, Declined)
_TAGS: dict[type[Any], int] = {kind: tag for tag, kind in enumerate(_KINDS)}


def encode(message: ToWorker | FromWorker) -> bytes:
    """A message as bytes: its kind's number and its fields as a plain tuple (a pickled
    ``NamedTuple`` names its class, which costs a microsecond each way: per batch, on
    the hot path)."""
    return pickle.dumps((_TAGS[type(message)], tuple(message)), 5)


def frame_at(buffer: bytearray, pos: int) -> tuple[int, int] | None:
    """Where the message framed at ``buffer[pos:]`` lies: ``(start, size)`` of its body,
    or None while its header is incomplete. The framing is ``multiprocessing.Connection``'s,
    which both ends write: a 4-byte big-endian length, or -1 and an 8-byte length. The
    body may still be incomplete: the caller compares ``start + size`` with what it has."""
    have = len(buffer) - pos
    if have < 4:
        return None
    size = int.from_bytes(buffer[pos : pos + 4], "big", signed=True)
    if size != -1:
        return pos + 4, size
    if have < 12:
        return None
    return pos + 12, int.from_bytes(buffer[pos + 4 : pos + 12], "big")


def take(buffer: bytearray, start: int, size: int) -> bytes:
    """A copy of ``buffer[start : start + size]`` (one copy: slicing a bytearray would make two)."""
    with memoryview(buffer) as view:
        return bytes(view[start : start + size])


def decode(data: bytes) -> Any:
    """The message :func:`encode` made.

    Raises:
        ProtocolError: the bytes are not a message.
    """
    try:
        tag, fields = pickle.loads(data)
        return tuple.__new__(_KINDS[tag], fields)
    except Exception as exc:
        raise ProtocolError(f"a message that is not part of the protocol ({type(exc).__name__}: {exc})") from exc


class ProtocolError(PathosError):
    """A worker's message did not fit the engine's state (a bug, or a corrupted pipe)."""


def expect_batch(expected: int, got: int, what: str) -> None:
    """Check a reply's batch id against the batch the engine thinks it answers.

    Raises:
        ProtocolError: they differ.
    """
    if expected != got:
        raise ProtocolError(f"a worker's {what} message named batch {got}, but batch {expected} was running")


# -- errors -------------------------------------------------------------------------
def error_payload(exc: BaseException) -> ErrorPayload:
    """Everything the other side needs to rebuild ``exc``, or at least to show it."""
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    try:
        data: bytes | None = dumps(exc)
    except Exception:
        data = None
    try:
        text = str(exc)
    except Exception:
        text = "<exception str() failed>"
    return data, f"{type(exc).__module__}.{type(exc).__qualname__}", text, tb


def rebuild_error(payload: ErrorPayload) -> BaseException:
    """The worker's exception, same type and args, with its traceback as ``__cause__``."""
    data, type_name, text, tb = payload
    exc: BaseException | None = None
    if data is not None:
        try:
            exc = loads(data)
        except Exception:
            exc = None
    if not isinstance(exc, BaseException):
        return RemoteError(type_name, text, tb)
    exc.__cause__ = RemoteTraceback(tb)
    return exc


def items_label(batch: Batch) -> str:
    """``"item 7"`` or ``"items 4..7"``: the items of ``batch``, for a message."""
    last = batch.start + len(batch.items) - 1
    return f"item {batch.start}" if last == batch.start else f"items {batch.start}..{last}"


def timeout_error(item: int, timeout: float, consequence: str) -> TaskTimeoutError:
    """The error for item ``item`` that ran past ``timeout`` seconds.

    Args:
        item: the index of the item (in the call's input) that was running.
        timeout: the job's ``timeout=``.
        consequence: what the engine did about it, ending the sentence
            (``"its worker was killed and replaced"``).
    """
    return TaskTimeoutError(
        f"item {item} ran longer than the timeout of {timeout:g} s; {consequence}",
        task=item,
        timeout=timeout,
    )


# -- running a batch ----------------------------------------------------------------
# Item-level exceptions that come back as that item's error: every exception, and the
# BaseExceptions a task may raise on purpose (sys.exit() in a task ends the task, not
# the worker; KeyboardInterrupt and GeneratorExit come back as their own types too).
ITEM_ERRORS: tuple[type[BaseException], ...] = (Exception, SystemExit, KeyboardInterrupt, GeneratorExit)


def run_items(
    fn: Callable[..., Any],
    items: list[Any],
    star: bool,
    kwargs: dict[str, Any],
) -> tuple[list[Any], dict[int, BaseException]]:
    """Call ``fn`` on each item; exceptions are kept per item and the loop goes on.

    Args:
        fn: the function.
        items: argument tuples (``star``) or single arguments.
        star: call ``fn(*item)`` rather than ``fn(item)``.
        kwargs: keyword arguments for every call.

    The common case (no error) runs as one tight loop; after an error the loop resumes
    at the next item. (The process worker runs its own variant, which also records each
    item's progress: ``_workers/_main.py``.)
    """
    values: list[Any] = []
    errors: dict[int, BaseException] = {}
    append = values.append
    start = 0
    while start < len(items):
        rest = items[start:] if start else items
        try:
            if star:
                for args in rest:
                    append(fn(*args, **kwargs))
            elif kwargs:
                for arg in rest:
                    append(fn(arg, **kwargs))
            else:
                for arg in rest:
                    append(fn(arg))
            break
        except ITEM_ERRORS as exc:
            errors[len(values)] = exc
            append(None)
            start = len(values)
    return values, errors


class BatchReply(NamedTuple):
    """What running a batch produced: ``values`` bytes, per-item ``errors``, ``seconds``."""

    values: bytes
    errors: ItemErrors
    seconds: float


def not_started(exc: BaseException) -> BatchReply:
    """The reply for a batch that could not start (its function or arguments would not load)."""
    return BatchReply(dumps(None), [(NOT_STARTED, error_payload(exc))], 0.0)


def run_loaded(
    fn: Callable[..., Any],
    kwargs: dict[str, Any],
    star: bool,
    items: list[Any],
    buffers: Any = None,
) -> BatchReply:
    """Run a loaded batch and serialize what it produced.

    Args:
        fn, kwargs, star: the job's function, keyword arguments and calling style.
        items: the loaded arguments.
        buffers: a pickle ``buffer_callback`` for large result buffers, or None.
    """
    start = time.perf_counter()
    values, raised = run_items(fn, items, star, kwargs)
    seconds = time.perf_counter() - start
    errors = [(offset, error_payload(exc)) for offset, exc in raised.items()]
    return BatchReply(dump_values(values, errors, buffers), errors, seconds)


def dump_values(values: list[Any], errors: ItemErrors, buffers: Any = None) -> bytes:
    """Serialize the results; one that will not serialize becomes that item's error.

    Args:
        values: the results (``None`` where an item raised).
        errors: ``(offset, payload)`` pairs, extended in place by unserializable results.
        buffers: a pickle ``buffer_callback`` (shared-memory writer), or None.
    """
    try:
        return dumps(values, buffers=buffers)  # gives back its buffers when it fails
    except Exception:
        pass
    for offset, value in enumerate(values):
        try:
            dumps(value, what="result")
        except Exception as exc:
            values[offset] = None
            errors.append((offset, error_payload(exc)))
    errors.sort(key=lambda e: e[0])
    return dumps(values)


def load_values(values: bytes, buffers: list[Any] | None = None) -> list[Any]:
    """The results a worker sent (``buffers``: its shared-memory segments, mapped)."""
    result: list[Any] = pickle.loads(values, buffers=buffers) if buffers else loads(values)
    return result
