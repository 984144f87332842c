"""What a Dask worker runs for a :class:`~pathos.pools.ParallelPool` batch.

Dask ships :func:`run_batch` by reference (this module must be importable on the
workers, so pathos is installed there) and its arguments as plain bytes made by
:mod:`pathos._serialize`, so lambdas, closures and ``__main__`` classes work as on every
other pool. The function is loaded once per job in each worker process and cached under
the job's token; the results go back as bytes, with one error payload per failed item
(the process engine's format, rebuilt in the caller by the same code).

For a job with a timeout the batch tells the caller when it starts running (a Dask
event on the pool's topic, naming the task's key), so the caller's clock measures the
run, not the wait for a worker, the transfer or the first imports in a fresh worker.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, cast

from .._job import call_items
from .._serialize import dumps, loads
from ._main import _dump_values, error_payload

__all__ = ["run_batch"]

_CACHE_SIZE = 32  # functions of recent jobs kept loaded in each worker process

_functions: OrderedDict[str, tuple[Callable[..., Any], dict[str, Any], bool]] = OrderedDict()
_lock = threading.Lock()  # a Dask worker may run several tasks at once, in threads


def _function(token: str, fn_bytes: bytes) -> tuple[Callable[..., Any], dict[str, Any], bool]:
    with _lock:
        entry = _functions.get(token)
        if entry is not None:
            _functions.move_to_end(token)
            return entry
    entry = cast("tuple[Callable[..., Any], dict[str, Any], bool]", loads(fn_bytes))
    with _lock:
        _functions[token] = entry
        while len(_functions) > _CACHE_SIZE:
            _functions.popitem(last=False)
    return entry


def run_batch(
    token: str, fn_bytes: bytes, items_bytes: bytes, started: tuple[str, str] | None = None
) -> tuple[bytes, list[tuple[int, Any]], float]:
    """Run one batch: ``(values_bytes, [(offset, error_payload)], seconds)``.

    Args:
        token: names the job's function in this process's cache.
        fn_bytes: the serialized ``(fn, kwargs, star)``.
        items_bytes: the serialized argument list.
        started: ``(topic, key)``: log an event ``key`` on ``topic`` once the function
            and the arguments are loaded and the first call is about to run.

    An offset of -1 means the batch could not start (the function or the arguments
    would not load here); its payload is that error.
    """
    try:
        fn, kwargs, star = _function(token, fn_bytes)
        items = loads(items_bytes)
    except Exception as exc:
        return dumps(None), [(-1, error_payload(exc))], 0.0
    if started is not None:
        _say_started(*started)
    start = time.perf_counter()
    values, raised = call_items(fn, items, star, kwargs)
    seconds = time.perf_counter() - start
    errors = [(offset, error_payload(exc)) for offset, exc in raised.items()]
    return _dump_values(values, errors, None), errors, seconds


def _say_started(topic: str, key: str) -> None:
    from distributed import get_worker

    try:
        get_worker().log_event(topic, key)
    except ValueError:  # not in a Dask worker (called directly): nobody to tell
        pass
