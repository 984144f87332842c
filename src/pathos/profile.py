"""Profile functions where they run, in this thread or inside a pool's workers, with
:mod:`cProfile` (pathos 0.3.5's ``pathos.profile``).

Each process keeps one profiler, made by :func:`enable_profiling` and dropped by
:func:`disable_profiling`; functions wrapped by :class:`profiled` run under it (when it
exists) and then print or dump its statistics. :class:`profile` does all of it for one
call, here or, given ``pipe=pool.pipe`` of a one-node pool, in that pool's worker:

    >>> import pathos.profile as pr
    >>> value = pr.profile("cumulative")(sum, range(10))   # prints the statistics
    >>> value
    45

To profile the work of a map in the workers, dump one file per worker process::

    work = pr.profiled(gen=pr.process_id)(f)        # writes id-<pid>.prof
    pool.map(pr.enable_profiling, range(pool.nodes))  # a profiler in the workers
    pool.map(work, xs)
"""

from __future__ import annotations

import cProfile
import os
import threading
from typing import Any, Callable, Union

__all__ = [
    "clear_stats",
    "disable_profiling",
    "dump_stats",
    "enable_profiling",
    "get_stats",
    "not_profiled",
    "print_stats",
    "process_id",
    "profile",
    "profiled",
    "profiler",
    "start_profiling",
    "stop_profiling",
    "thread_id",
]

profiler: cProfile.Profile | None = None
"""This process's profiler, or None when profiling is disabled."""

Sort = Union[str, int]


def process_id() -> int:
    """The id of the current process."""
    return os.getpid()


def thread_id() -> int:
    """The id of the current thread."""
    return threading.get_ident()


def enable_profiling(*args: Any) -> None:
    """Give this process a new profiler (arguments are ignored, so it can be mapped)."""
    global profiler
    profiler = cProfile.Profile()


def start_profiling(*args: Any) -> None:
    """Profile everything this process runs from now on (enabling profiling if needed)."""
    if profiler is None:
        enable_profiling()
    assert profiler is not None
    profiler.enable()


def stop_profiling(*args: Any) -> None:
    """Stop profiling everything; the statistics so far are kept."""
    if profiler is not None:
        profiler.disable()


def disable_profiling(*args: Any) -> None:
    """Stop profiling and drop this process's profiler and its statistics."""
    global profiler
    stop_profiling()
    profiler = None


def clear_stats(*args: Any) -> None:
    """Forget the statistics gathered so far."""
    if profiler is not None:
        profiler.clear()


def get_stats(*args: Any) -> list[Any]:
    """The raw statistics gathered so far.

    Raises:
        UnboundLocalError: profiling is disabled (a ``NameError``, as pathos 0.3.5
            raised); call :func:`enable_profiling` first.
    """
    if profiler is None:
        raise UnboundLocalError("no statistics: profiling is disabled in this process; call enable_profiling() first")
    return list(profiler.getstats())


def print_stats(*args: Any, **kwds: Any) -> None:
    """Print the statistics gathered so far, ordered by ``sort=`` (e.g. ``"cumulative"``;
    default: standard order); other arguments are ignored, as in pathos 0.3.5."""
    if profiler is not None:
        profiler.print_stats(kwds.get("sort", -1))


def dump_stats(*args: Any, **kwds: Any) -> str | None:
    """Write the statistics to ``f"{prefix}{gen()}{suffix}"``, for :mod:`pstats`.

    Keywords (others are ignored, as in pathos 0.3.5): ``gen`` (default
    :func:`process_id`), ``prefix`` (default ``"id-"``), ``suffix`` (default
    ``".prof"``). Returns the file name, or None when profiling is disabled.
    """
    if profiler is None:
        return None
    gen = kwds.get("gen") or process_id
    path = f"{kwds.get('prefix', 'id-')}{gen()}{kwds.get('suffix', '.prof')}"
    profiler.dump_stats(path)
    return path


class profiled:
    """A decorator that runs a function under this process's profiler, if there is one.

    It does not enable profiling: call :func:`enable_profiling` where the function runs.

    Args:
        gen: where the statistics go after each call. A ``str`` or ``bool`` prints them,
            sorted by that key (``"cumulative"``, ``"tottime"``, ``"calls"``...; a bool:
            standard order). Otherwise a function giving an id (default
            :func:`process_id`; or :func:`thread_id`), and they are dumped to the file
            ``f"{prefix}{gen()}{suffix}"``.
        prefix: the start of the file name.
        suffix: the end of the file name.
    """

    def __init__(self, gen: Any = None, prefix: str = "id-", suffix: str = ".prof") -> None:
        self.prefix = prefix
        self.suffix = suffix
        if isinstance(gen, (bool, str)):
            self.sort: Sort = -1 if isinstance(gen, bool) else gen
            self.pid: Callable[..., Any] = str  # pathos's marker for "print, do not dump"
        else:
            self.sort = -1
            self.pid = gen or process_id

    def __call__(self, f: Callable[..., Any]) -> Callable[..., Any]:
        """``f`` wrapped: run under the profiler, then print or dump the statistics."""
        return _Profiled(f, self)


class _Profiled:
    """A function wrapped by :class:`profiled`; an object, so it pickles into workers by
    reference to this module (it uses the worker's profiler, not a copy of ours)."""

    __name__ = "proactive"  # pathos 0.3.5's name for the wrapper; not_profiled looks for it

    def __init__(self, f: Callable[..., Any], config: profiled) -> None:
        self.__wrapped__ = f
        self._config = config

    def __call__(self, *args: Any, **kwds: Any) -> Any:
        active = profiler
        if active is None:
            return self.__wrapped__(*args, **kwds)
        active.enable()
        try:
            return self.__wrapped__(*args, **kwds)
        finally:
            active.disable()
            config = self._config
            if config.pid is str:
                active.print_stats(config.sort)
            else:
                active.dump_stats(f"{config.prefix}{config.pid()}{config.suffix}")


class _Plain:
    """A function called without profiling (what :func:`not_profiled` returns)."""

    __name__ = "wrapper"  # as pathos 0.3.5 names it

    def __init__(self, f: Callable[..., Any]) -> None:
        self.__wrapped__ = f

    def __call__(self, *args: Any, **kwds: Any) -> Any:
        return self.__wrapped__(*args, **kwds)


def not_profiled(f: Callable[..., Any]) -> Callable[..., Any]:
    """The function behind a :class:`profiled` wrapper, called without profiling."""
    unwrap = getattr(f, "__name__", None) == "proactive"
    return _Plain(getattr(f, "__wrapped__", f) if unwrap else f)


class profile:
    """Profile one call and print its statistics: ``profile(sort)(f, *args, **kwds)``.

    Args:
        sort: the order of the printed statistics (``"cumulative"``, ``"tottime"``...).
        pipe: run the call there, e.g. ``ProcessPool(1).pipe`` (its pool must have one
            node, so the profiler is enabled in the very worker that runs the call);
            default: here, on a :class:`~pathos.pools.SerialPool`.
        **config: other :class:`profiled` options (``gen``, ``prefix``, ``suffix``).

    Raises:
        ValueError: ``pipe`` belongs to a pool with more than one node.
    """

    def __init__(self, sort: Sort | None = None, **config: Any) -> None:
        from .pools import SerialPool

        pipe = config.pop("pipe", None)
        if sort is not None and not isinstance(sort, bool):
            config["gen"] = sort
        self.config = config or {"gen": False}
        self.pipe: Callable[..., Any] = pipe if pipe is not None else SerialPool().pipe
        pool = getattr(self.pipe, "__self__", None)
        if pool is not None and getattr(pool, "nodes", 1) != 1:
            raise ValueError("pipe must draw from a pool with only one node")

    def __call__(self, function: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        """Call ``function(*args, **kwds)`` profiled, through the pipe; returns its value."""
        self.pipe(enable_profiling, None)
        try:
            return self.pipe(profiled(**self.config)(function), *args, **kwds)
        finally:
            self.pipe(disable_profiling, None)
