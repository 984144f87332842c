"""What a Dask worker runs for a :class:`~pathos.pools.ParallelPool` batch.

Dask ships :func:`run_batch` by reference (this module must be importable on the
workers, so pathos is installed there) and its arguments as plain bytes made by
:mod:`pathos._serialize`, so lambdas, closures and ``__main__`` classes work as on every
other pool. The function is loaded once per job in each worker process and cached under
the job's token. The batch runs through the body the process workers use too
(:func:`pathos._workers._protocol.run_loaded`), and its reply is a
:class:`~pathos._workers._protocol.BatchReply`: the values as bytes, one error payload
per failed item, and the seconds it took.

For a job with a timeout the batch tells the caller when it starts running (a Dask
event on the pool's topic, naming the task's key), so the caller's clock measures the
run, not the wait for a worker, the transfer or the first imports in a fresh worker.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Callable, cast

from .._serialize import loads
from ._protocol import BatchReply, not_started, run_loaded

__all__ = ["run_batch"]

_CACHE_SIZE = 32  # functions of recent jobs kept loaded in each worker process

_Function = tuple[Callable[..., Any], dict[str, Any], bool]
_functions: OrderedDict[str, _Function] = OrderedDict()
_lock = threading.Lock()  # a Dask worker may run several tasks at once, in threads


def _function(token: str, fn_bytes: bytes) -> _Function:
    with _lock:
        entry = _functions.get(token)
        if entry is not None:
            _functions.move_to_end(token)
            return entry
    entry = cast("_Function", loads(fn_bytes))
    with _lock:
        _functions[token] = entry
        while len(_functions) > _CACHE_SIZE:
            _functions.popitem(last=False)
    return entry


def run_batch(token: str, fn_bytes: bytes, items_bytes: bytes, started: tuple[str, str] | None = None) -> BatchReply:
    """Run one batch and say what it produced.

    Args:
        token: names the job's function in this process's cache.
        fn_bytes: the serialized ``(fn, kwargs, star)``.
        items_bytes: the serialized argument list.
        started: ``(topic, key)``: log an event ``key`` on ``topic`` once the function
            and the arguments are loaded and the first call is about to run.

    A batch that could not start (the function or the arguments would not load here)
    replies with one error at offset :data:`~pathos._workers._protocol.NOT_STARTED`.
    """
    try:
        fn, kwargs, star = _function(token, fn_bytes)
        items = loads(items_bytes)
    except Exception as exc:
        return not_started(exc)
    if started is not None:
        _say_started(*started)
    return run_loaded(fn, kwargs, star, items)


def _say_started(topic: str, key: str) -> None:
    from distributed import get_worker

    try:
        get_worker().log_event(topic, key)
    except ValueError:  # not in a Dask worker (called directly): nobody to tell
        pass
