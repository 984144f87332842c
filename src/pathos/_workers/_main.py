"""The loop a worker process runs: receive a batch, run it, send the results back.

Messages are plain pickles of tuples; the objects inside travel as bytes made by
:mod:`pathos._serialize`, so a bad object fails one batch, never the loop.

parent -> worker::

    ("run", batch_id, job_key, fn_bytes | None, items_bytes, [(segment, nbytes)], forget_keys)
    ("stop",)

worker -> parent::

    ("ready", pid)                         after the initializer ran
    ("init_error", error_payload)          the initializer raised; the worker exits
    ("done", batch_id, values_bytes, segments, [(offset, error_payload)], seconds, over_memory, kept)
    ("declined", batch_id)                 over its memory limit: the batch was not run

The worker maps the parent's argument segments for one batch and unmaps them after;
``kept`` names those it could not unmap because the function kept an argument (see
:mod:`pathos._shm`). Result ``segments`` are new files the parent takes over.

An ``error_payload`` is ``(exception_bytes | None, type_name, text, traceback_text)``.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys
import threading
import time
import traceback
from multiprocessing.connection import Connection
from typing import Any, Callable

from .. import _shm
from .._job import call_items
from .._serialize import dumps, loads

__all__ = ["cpu_budget", "error_payload", "run_worker"]

# How many cores a pool created inside this worker may use by default (see _config).
_cpu_budget: int | None = None


def cpu_budget() -> int | None:
    """Cores left to a pool created inside this worker, or None outside workers."""
    return _cpu_budget


def error_payload(exc: BaseException) -> tuple[bytes | None, str, str, str]:
    """Everything the parent needs to rebuild ``exc``, or at least to show it."""
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
    os._exit(1)


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # not Linux: peak RSS is the best we have
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def run_worker(conn: Connection, setup: bytes) -> None:
    """Entry point of a worker process."""
    global _cpu_budget
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    initializer, initargs, max_memory, _cpu_budget, owner = loads(setup)
    threading.Thread(target=_watch_parent, args=(owner,), name="pathos-parent-watch", daemon=True).start()
    if initializer is not None:
        try:
            initializer(*initargs)
        except Exception as exc:
            conn.send_bytes(pickle.dumps(("init_error", error_payload(exc))))
            return
    conn.send_bytes(pickle.dumps(("ready", os.getpid())))
    try:
        prefix = f"pathos-{owner}-{os.getpid()}" if _shm.available() else None
        _serve(conn, max_memory, prefix)
    finally:
        from .._registry import shutdown_all

        shutdown_all()  # pools the user's functions created in this worker


def _serve(conn: Connection, max_memory: int | None, prefix: str | None) -> None:
    functions: dict[int, tuple[Callable[..., Any], dict[str, Any], bool]] = {}
    declining = False  # over the memory limit: hand queued batches back, unrun
    while True:
        try:
            message = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):
            return
        if message[0] == "stop":
            return
        _, batch_id, key, fn_bytes, items_bytes, segments, forget = message
        if declining:
            conn.send_bytes(pickle.dumps(("declined", batch_id)))
            continue
        for old in forget:
            functions.pop(old, None)
        writer = _shm.BufferWriter(prefix) if prefix else None
        handles: list[Any] = []
        reply = _run_batch(functions, key, fn_bytes, items_bytes, segments, writer, handles)
        kept = _shm.unmap_segments(handles) if handles else []
        over = max_memory is not None and _rss_bytes() > max_memory
        declining = over
        names = writer.names if writer is not None else []
        conn.send_bytes(pickle.dumps(("done", batch_id, reply[0], names, *reply[1:], over, kept)))


def _run_batch(
    functions: dict[int, tuple[Callable[..., Any], dict[str, Any], bool]],
    key: int,
    fn_bytes: bytes | None,
    items_bytes: bytes,
    segments: list[tuple[str, int]],
    writer: _shm.BufferWriter | None,
    handles: list[Any],
) -> tuple[bytes, list[tuple[int, Any]], float]:
    """Run one batch; ``handles`` receives the argument mappings to close afterwards."""
    try:
        if fn_bytes is not None:
            functions[key] = loads(fn_bytes)
        fn, kwargs, star = functions[key]
        if segments:
            buffers, mapped = _shm.map_segments(segments)
            handles.extend(mapped)
            items = pickle.loads(items_bytes, buffers=buffers)
            del buffers
        else:
            items = loads(items_bytes)
    except Exception as exc:  # could not rebuild the function or the arguments here
        return dumps(None), [(-1, error_payload(exc))], 0.0
    start = time.perf_counter()
    values, raised = call_items(fn, items, star, kwargs)
    seconds = time.perf_counter() - start
    errors = [(offset, error_payload(exc)) for offset, exc in raised.items()]
    return _dump_values(values, errors, writer), errors, seconds


def _dump_values(values: list[Any], errors: list[tuple[int, Any]], writer: _shm.BufferWriter | None) -> bytes:
    """Serialize the results; one that will not serialize becomes that item's error."""
    try:
        return dumps(values, buffers=writer)
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
