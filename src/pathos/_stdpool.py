"""``_ProcessPool`` and ``_ThreadPool``: the standard library's ``Pool`` API (one iterable,
``starmap``, ``apply``, callbacks) on our engines, so dill-only objects work there too.
Not cached: each instance has its own workers, and ``with`` terminates them at the end.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Iterable

from ._config import parse_context
from ._pool import WorkerPool
from ._results import AsyncResult, ResultIterator

__all__ = ["_ProcessPool", "_ThreadPool"]


def _star(fn: Callable[..., Any], args: Any) -> Any:
    return fn(*args)


def _with_callbacks(
    result: AsyncResult, callback: Callable[[Any], Any] | None, error_callback: Callable[[BaseException], Any] | None
) -> AsyncResult:
    if callback is None and error_callback is None:
        return result
    job = result._job

    def done(_: Any) -> None:
        if job.error is None:
            if callback is not None:
                callback(result.get())
        elif error_callback is not None:
            error_callback(job.error)

    job.add_done_callback(done, deliver=True)  # user code: on the callback thread
    return result


class _StdPool:
    """The ``multiprocessing.pool.Pool`` interface over a private pathos pool."""

    _kind: Any = None

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        **kwds: Any,
    ) -> None:
        options = dict(kwds, initializer=initializer, initargs=tuple(initargs))
        self._pool: WorkerPool = self._kind(processes, **options)

    def map(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        """``[func(x) for x in iterable]``, computed in the workers."""
        return self._pool.map(func, iterable, chunksize=chunksize)

    def starmap(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int | None = None) -> list[Any]:
        """``[func(*args) for args in iterable]``, computed in the workers."""
        return self._pool.map(functools.partial(_star, func), iterable, chunksize=chunksize)

    def imap(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int = 1) -> ResultIterator:
        """A lazy iterator of ``func(x)``, in input order."""
        return self._pool.imap(func, iterable, chunksize=chunksize)

    def imap_unordered(self, func: Callable[..., Any], iterable: Iterable[Any], chunksize: int = 1) -> ResultIterator:
        """A lazy iterator of ``func(x)``, in the order they finish."""
        return self._pool.uimap(func, iterable, chunksize=chunksize)

    def map_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``map`` without waiting: an :class:`~pathos.AsyncResult`; callbacks run when it is done."""
        return _with_callbacks(self._pool.amap(func, iterable, chunksize=chunksize), callback, error_callback)

    def starmap_async(
        self,
        func: Callable[..., Any],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``starmap`` without waiting: an :class:`~pathos.AsyncResult`; callbacks run when it is done."""
        star = functools.partial(_star, func)
        return _with_callbacks(self._pool.amap(star, iterable, chunksize=chunksize), callback, error_callback)

    def apply(self, func: Callable[..., Any], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None) -> Any:
        """``func(*args, **kwds)``, run in a worker."""
        return self._pool.pipe(func, *args, **(kwds or {}))

    def apply_async(
        self,
        func: Callable[..., Any],
        args: Iterable[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[Any], Any] | None = None,
        error_callback: Callable[[BaseException], Any] | None = None,
    ) -> AsyncResult:
        """``apply`` without waiting: an :class:`~pathos.AsyncResult`; callbacks run when it is done."""
        return _with_callbacks(self._pool.apipe(func, *args, **(kwds or {})), callback, error_callback)

    def close(self) -> None:
        """Accept no more work; the workers exit once the queued work is done."""
        self._pool.close()

    def join(self) -> None:
        """Wait for the workers to exit (after :meth:`close` or :meth:`terminate`)."""
        self._pool.join()

    def terminate(self) -> None:
        """Stop the workers now; unfinished work fails with ``PoolClosedError``."""
        self._pool.terminate()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.terminate()

    @property
    def _processes(self) -> int:
        """The number of workers (the standard library's attribute name)."""
        return self._pool.nodes

    def __repr__(self) -> str:
        return f"<{type(self).__name__} processes={self._pool.nodes}>"


def _uncached(base: type) -> type:
    return type(f"_Private{base.__name__}", (base,), {"_cached": False, "__module__": __name__})


class _ProcessPool(_StdPool):
    """``multiprocessing.Pool(processes, initializer, initargs, maxtasksperchild, context)``,
    dill-capable, on pathos's process engine."""

    def __init__(
        self,
        processes: int | None = None,
        initializer: Callable[..., Any] | None = None,
        initargs: Iterable[Any] = (),
        maxtasksperchild: int | None = None,
        context: Any = None,
    ) -> None:
        from .pools import ProcessPool

        self._kind = _uncached(ProcessPool)
        parse_context(context)
        super().__init__(processes, initializer, initargs, maxtasksperchild=maxtasksperchild, context=context)


class _ThreadPool(_StdPool):
    """``multiprocessing.pool.ThreadPool(processes, initializer, initargs)`` on pathos's
    thread engine."""

    def __init__(
        self, processes: int | None = None, initializer: Callable[..., Any] | None = None, initargs: Iterable[Any] = ()
    ) -> None:
        from .pools import ThreadPool

        self._kind = _uncached(ThreadPool)
        super().__init__(processes, initializer, initargs)
