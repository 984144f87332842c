"""pathos's map objects: a configured pool plus a verb, called like a function.

``Map(ProcessPool, nodes=2)(f, xs, ys)`` makes the pool (cached, so cheap), calls its
``map`` and returns the result. ``clear=True`` clears the pool after each call (implies
``join`` and ``close``); ``close=True`` only closes it, which on a cached pathos pool makes
the next call fail until ``clear()``: prefer ``clear=True`` with pathos pools.
"""

from __future__ import annotations

import builtins
import itertools
from typing import Any, Callable

__all__ = ["Amap", "Asmap", "Imap", "Ismap", "Map", "Smap", "Uimap"]


class _Mapper:
    """A pool class, its arguments, and what to do with the pool after a call."""

    def __init__(self, pool: Any = None, *args: Any, **kwds: Any) -> None:
        self.clear_ = kwds.pop("clear", False)
        self.join_ = kwds.pop("join", self.clear_)
        self.close_ = kwds.pop("close", self.join_)
        self.pool = None if pool is builtins.map else pool
        self.args = args
        self.kwds = kwds
        self._pool: Any = None

    def __call__(self, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        if self.pool is None:
            return self._fallback(func, *args, **kwds)
        self._pool = self.pool(*self.args, **self.kwds)
        try:
            return self._call(self._pool, func, *args, **kwds)
        finally:
            if self.close_:
                self.close()
            if self.join_:
                self.join()
            if self.clear_:
                self.clear()

    def _call(self, pool: Any, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        raise NotImplementedError

    def _fallback(self, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        return NotImplemented

    def close(self) -> None:
        """Close the pool of the last call."""
        getattr(self._pool, "close", lambda: None)()

    def join(self) -> None:
        """Join the pool of the last call."""
        getattr(self._pool, "join", lambda: None)()

    def clear(self) -> None:
        """Clear the pool of the last call."""
        getattr(self._pool, "clear", lambda: None)()

    def __del__(self) -> None:
        # As pathos 0.3.5: a map object shuts its last pool down when it goes away.
        try:
            if self._pool is not None:
                self.close()
                self.join()
                self.clear()
        except Exception:
            pass
        self._pool = None


def _method(pool: Any, *names: str) -> Callable[..., Any] | None:
    for name in names:
        method = getattr(pool, name, None)
        if method is not None:
            return method  # type: ignore[no-any-return]
    return None


def _star(func: Callable[..., Any]) -> Callable[[Any], Any]:
    return lambda args: func(*args)


class Map(_Mapper):
    """Blocking ordered map: ``Map(pool, *pool_args)(f, *iterables)`` -> list."""

    def _call(self, pool: Any, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        return pool.map(func, *args, **kwds)

    def _fallback(self, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        return list(builtins.map(func, *args))


class Imap(_Mapper):
    """Non-blocking ordered map -> iterator."""

    def _call(self, pool: Any, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        return pool.imap(func, *args, **kwds)

    def _fallback(self, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        return builtins.map(func, *args)


class Uimap(_Mapper):
    """Non-blocking unordered map -> iterator."""

    def _call(self, pool: Any, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        method = _method(pool, "uimap", "imap_unordered")
        assert method is not None, f"{pool!r} has no unordered map"
        return method(func, *args, **kwds)


class Amap(_Mapper):
    """Asynchronous map -> a result with ``get()``."""

    def _call(self, pool: Any, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        method = _method(pool, "amap", "map_async")
        assert method is not None, f"{pool!r} has no asynchronous map"
        return method(func, *args, **kwds)


class Smap(_Mapper):
    """Blocking ordered star-map: ``f(*item)`` for each item of one iterable."""

    def _call(self, pool: Any, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        method = _method(pool, "smap", "starmap")
        if method is not None:
            return method(func, *args, **kwds)
        return pool.map(_star(func), *args, **kwds)

    def _fallback(self, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        return list(itertools.starmap(func, *args))


class Asmap(_Mapper):
    """Asynchronous star-map -> a result with ``get()``."""

    def _call(self, pool: Any, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        method = _method(pool, "asmap", "starmap_async")
        if method is not None:
            return method(func, *args, **kwds)
        return pool.amap(_star(func), *args, **kwds)


class Ismap(_Mapper):
    """Non-blocking ordered star-map -> iterator."""

    def _call(self, pool: Any, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        method = _method(pool, "ismap")
        if method is not None:
            return method(func, *args, **kwds)
        return pool.imap(_star(func), *args, **kwds)

    def _fallback(self, func: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        return itertools.starmap(func, *args)
