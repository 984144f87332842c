"""The six verbs (``map``, ``imap``, ``uimap``, ``amap``, ``pipe``, ``apipe``), written once
over :class:`~pathos._backend.Backend`, and pathos's pool lifecycle.

The pool cache (pathos 0.3.5 behaviour, kept for compatibility): each pool class keeps
one dict, ``__state__``, mapping a pool id to its backend. By default the id is the node
count, so every ``ProcessPool(4)`` in a process shares one set of workers. ``close()``
keeps the closed backend in the cache (calls then raise ``ValueError("Pool not
running...")``) until ``clear()`` or ``restart()``; a ``with`` block clears at its end.

The cache is guarded by one lock (two threads constructing the same id get one
backend), and a forked child starts with every class's cache empty: the parent's
backends are run by threads that do not exist in the child (issue item 1).
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable, Iterator

from ._backend import RUN, Backend
from ._errors import PathosError, public
from ._job import Job
from ._progress import attach_progress, check_progress, sized_total
from ._results import AsyncResult, ResultIterator

if TYPE_CHECKING:
    from concurrent.futures import Future  # submit() makes one through pathos._futures

__all__ = ["AbstractWorkerPool", "PoolRunningError", "WorkerPool"]

_CALL_OPTIONS = ("chunksize", "timeout", "retries", "progress")
TERMINATE_JOIN_SECONDS = 10.0  # terminate() waits this long at most for the engine to exit

# Guards every class's ``__state__``: looking an id up, building its backend and storing
# it is one step (an RLock: building a backend may look up another pool's cache).
_cache_lock = threading.RLock()


def _forget_parent_pools() -> None:
    """In a forked child: empty every pool class's cache, and renew the cache lock.

    The cached backends belong to the parent: their engine threads do not exist here,
    so a call on one would wait forever; and the lock may have been held by a parent
    thread at the fork. Each class gets a new dict (the parent's stays the parent's).
    """
    global _cache_lock
    _cache_lock = threading.RLock()
    pending: list[type] = [WorkerPool]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        if "__state__" in vars(cls):
            cls.__state__ = {}  # type: ignore[attr-defined]


@public
class PoolRunningError(PathosError, ValueError, AssertionError):
    """``join()`` was called on a pool still running (a ``ValueError``, and an
    ``AssertionError`` as pathos's serial and parallel pools raise)."""


class AbstractWorkerPool:
    """The pool interface of pathos: the verbs, ``nodes``, and ``with`` support.

    Subclasses (as pyina's do) may route ``nodes`` through a ``nodes`` property of their
    own: ``__init__`` assigns ``self.nodes = nodes`` (a read-only ``nodes`` that raises
    ``TypeError`` is left alone), and the input filters ``_AbstractWorkerPool__map``,
    ``__imap``, ``__pipe``, ``__init`` and ``__get_nodes``/``__set_nodes`` are there
    to be called by name, as in pathos 0.3.5.

    Args:
        nodes: number of workers (positional or ``nodes=``; default 1).
        id: the key of this pool in its class's pool cache.
    """

    __nodes = 1

    def __init__(self, *args: Any, **kwds: Any) -> None:
        self.__init(*args, **kwds)
        self._id = kwds.get("id")

    def __init(self, *args: Any, **kwds: Any) -> None:
        """Take ``nodes`` from the first positional argument or ``nodes=``."""
        if args:
            if "nodes" in kwds:
                raise TypeError("got multiple values for keyword argument 'nodes'")
            nodes = args[0]
        else:
            nodes = kwds.get("nodes", self.__nodes)
        try:
            self.nodes = nodes
        except TypeError:
            pass  # a subclass whose nodes is read-only

    def __map(self, f: Any, *args: Any, **kwds: Any) -> None:
        """Check the arguments of a map: at least one iterable."""
        if not args:
            raise TypeError("map() requires at least two args")

    def __imap(self, f: Any, *args: Any, **kwds: Any) -> None:
        """Check the arguments of an imap: at least one iterable."""
        if not args:
            raise TypeError("imap() must have at least two arguments")

    def __pipe(self, f: Any, *args: Any, **kwds: Any) -> None:
        """Check the arguments of a pipe (anything goes: ``f`` itself says what it takes)."""

    def __get_nodes(self) -> int:
        return self.__nodes

    def __set_nodes(self, nodes: int) -> None:
        raise TypeError("nodes is a read-only attribute")

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def __repr__(self) -> str:
        return f"<pool {type(self).__name__}()>"

    def _serve(self, *args: Any, **kwds: Any) -> Any:
        """Create the workers of this pool if the cache has none (pools implement it)."""
        raise NotImplementedError

    def map(self, f: Callable[..., Any], *args: Iterable[Any], **kwds: Any) -> Any:
        """Run ``f`` on the items of ``args`` zipped together; blocking, ordered -> list."""
        raise NotImplementedError

    def imap(self, f: Callable[..., Any], *args: Iterable[Any], **kwds: Any) -> Any:
        """Like :meth:`map`, non-blocking, ordered -> an iterator of results."""
        raise NotImplementedError

    def uimap(self, f: Callable[..., Any], *args: Iterable[Any], **kwds: Any) -> Any:
        """Like :meth:`imap`, in completion order."""
        raise NotImplementedError

    def amap(self, f: Callable[..., Any], *args: Iterable[Any], **kwds: Any) -> Any:
        """Like :meth:`map`, asynchronous -> a result with ``get()`` and ``ready()``."""
        raise NotImplementedError

    def pipe(self, f: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        """Call ``f(*args, **kwds)`` once in a worker; blocking -> its value."""
        raise NotImplementedError

    def apipe(self, f: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        """Like :meth:`pipe`, asynchronous -> a result with ``get()``."""
        raise NotImplementedError

    def clear(self) -> None:
        """Shut down and forget the cached workers of this pool."""
        raise NotImplementedError


def _is_zero(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def _none(*args: Any) -> None:
    return None


def _check_function(verb: str, f: Any) -> None:
    if not callable(f):
        raise TypeError(f"{verb}() needs a callable as its first argument, got {type(f).__name__}: {f!r:.60}")


def _call_options(verb: str, kwds: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    options = {k: defaults.get(k) for k in _CALL_OPTIONS}
    for key, value in kwds.items():
        if key not in _CALL_OPTIONS:
            raise TypeError(
                f"{verb}() got an unexpected keyword argument {key!r}; keyword arguments for "
                "the function itself are not supported by map verbs: bind them with "
                "functools.partial or a lambda"
            )
        options[key] = value
    chunksize = options["chunksize"]
    if chunksize is not None and (not isinstance(chunksize, int) or chunksize < 1):
        raise ValueError(f"Chunksize must be 1+, not {chunksize!r}: chunksize must be a positive int")
    timeout = options["timeout"]
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise ValueError(f"timeout must be a positive number of seconds, got {timeout!r}")
    retries = options["retries"] or 0
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"retries must be a non-negative int, got {retries!r}")
    options["retries"] = retries
    check_progress(options["progress"])
    return options


class WorkerPool(AbstractWorkerPool):
    """A pool whose verbs run on a backend; subclasses say which backend and how.

    Subclasses set ``_node_aliases`` (keyword spellings of nodes), ``_options`` (the
    keywords their backend takes) and implement :meth:`_make_backend`.
    """

    __state__: ClassVar[dict[Any, Backend]] = {}
    _node_aliases: ClassVar[tuple[str, ...]] = ("nodes",)
    _options: ClassVar[tuple[str, ...]] = ()
    _cached: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwds: Any) -> None:
        nodes = self._resolve_nodes(args, kwds)
        self._id = kwds.pop("id", None)
        self._defaults = {k: kwds.pop(k) for k in _CALL_OPTIONS if k in kwds}
        _call_options(type(self).__name__, {k: v for k, v in self._defaults.items()}, {})
        for key in kwds:
            if key not in self._options:
                raise TypeError(f"{type(self).__name__}() got an unexpected keyword argument {key!r}")
        self._kwds = kwds
        self._nodes = nodes
        if self._id is None:
            self._id = self._default_id()
        self._own: Backend | None = None  # the backend of an uncached pool
        self._own_pid = os.getpid()  # the process that made _own (a forked child makes its own)
        self._serve()

    # -- configuration ------------------------------------------------------------------
    def _resolve_nodes(self, args: tuple[Any, ...], kwds: dict[str, Any]) -> int:
        given = [name for name in self._node_aliases if name in kwds]
        if args:
            given.insert(0, "positional")
        if len(given) > 1:
            second = [g for g in given if g != "positional"][-1] if "positional" in given else given[1]
            raise TypeError(f"got multiple values for keyword argument {second!r}")
        if len(args) > 1:
            raise TypeError(f"{type(self).__name__}() takes at most 1 positional argument ({len(args)} given)")
        value = args[0] if args else (kwds.pop(given[0]) if given else None)
        for name in self._node_aliases:
            kwds.pop(name, None)
        return self._validate_nodes(value)

    def _validate_nodes(self, value: Any) -> int:
        if value is None:
            return self._default_nodes()
        if not isinstance(value, int) or isinstance(value, bool):  # this order narrows to int on mypy 1.x too
            raise TypeError(f"nodes must be an int (the number of workers), got {type(value).__name__}: {value!r}")
        if value < 1:
            raise ValueError(
                f"nodes must be at least 1 (the number of workers), got {value}; "
                "leave it out to use one worker per core"
            )
        return value

    def _default_nodes(self) -> int:
        from .helpers import cpu_count

        return cpu_count()

    def _default_id(self) -> Any:
        return self._nodes

    def _make_backend(self, nodes: int) -> Backend:
        raise NotImplementedError

    def _config(self) -> tuple[int, dict[str, Any]]:
        return (self._nodes, self._kwds)

    # -- the cache ------------------------------------------------------------------
    def _serve(self, nodes: int | None = None) -> Backend:
        """The backend for this pool's id, created (or re-created) if needed."""
        if nodes is not None:
            self._nodes = self._validate_nodes(nodes)
        if not self._cached:
            if self._own_pid != os.getpid():  # a forked child: the parent's backend is not ours
                self._own, self._own_pid = None, os.getpid()
            if self._own is None or nodes is not None:
                if self._own is not None:
                    self._own.close()
                self._own = self._make_backend(self._nodes)
            return self._own
        with _cache_lock:
            state = self.__state__
            backend = state.get(self._id)
            if backend is None or getattr(backend, "_pathos_config", None) != self._config():
                if backend is not None:
                    backend.close()  # pathos just dropped it, leaking its workers
                backend = self._make_backend(self._nodes)
                backend._pathos_config = self._config()  # type: ignore[attr-defined]
                state[self._id] = backend
            return backend

    def _cached_backend(self) -> Backend | None:
        """The cached backend if it matches this pool's node count (pathos's check)."""
        if not self._cached:
            return self._own if self._own_pid == os.getpid() else None
        with _cache_lock:
            backend = self.__state__.get(self._id)
        if backend is not None and backend.nodes == self._nodes:
            return backend
        return None

    def _evict(self, backend: Backend) -> None:
        if not self._cached:
            self._own = None
            return
        with _cache_lock:
            if self.__state__.get(self._id) is backend:
                del self.__state__[self._id]

    # -- lifecycle --------------------------------------------------------------------
    def close(self) -> None:
        """Accept no new work; work already submitted still finishes."""
        backend = self._cached_backend()
        if backend is not None:
            backend.close()

    def join(self) -> None:
        """Wait for the workers of a closed pool to finish and exit.

        Raises:
            PoolRunningError: the pool was not closed first (a ``ValueError``).
        """
        backend = self._cached_backend()
        if backend is None:
            return
        if backend.state == RUN:
            raise PoolRunningError("Pool is still running: call close() or terminate() before join()")
        backend.join()

    def terminate(self) -> None:
        """Stop the workers now; unfinished calls fail with ``PoolClosedError``."""
        backend = self._cached_backend()
        if backend is not None:
            backend.terminate()
            backend.join(TERMINATE_JOIN_SECONDS)

    def clear(self) -> None:
        """Close, join and forget this pool's workers; the next call starts new ones."""
        backend = self._cached_backend()
        if backend is None or getattr(backend, "_pathos_config", self._config()) != self._config():
            return
        backend.close()
        backend.join()
        self._evict(backend)

    def _clear(self) -> None:
        """pathos's name of :meth:`clear` (``p._clear(); p._serve()`` starts fresh workers)."""
        self.clear()

    def restart(self, force: bool = False) -> Backend | None:
        """Clear the cached workers and start new ones; returns the new backend."""
        backend = self._cached_backend()
        if backend is None:
            return None
        backend.close()
        backend.join()
        self._evict(backend)
        return self._serve()

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: Any) -> None:
        """End of a ``with`` block: close, join and evict (terminate on an error)."""
        backend = self._cached_backend()
        if backend is None:
            return
        if exc and exc[0] is not None:
            backend.terminate()
            backend.join(TERMINATE_JOIN_SECONDS)
        else:
            backend.close()
            backend.join()
        self._evict(backend)

    # -- the verbs ----------------------------------------------------------------------
    def _running_backend(self) -> Backend:
        backend = self._serve()
        if backend.state != RUN:
            raise backend.closed_error()
        return backend

    def _interrupt(self, backend: Backend) -> Callable[[], None]:
        """What Ctrl-C during a wait does: stop the workers and forget them."""

        def stop() -> None:
            backend.terminate()
            self._evict(backend)

        return stop

    def _job(
        self,
        verb: str,
        f: Any,
        kwds: dict[str, Any],
        *,
        fail_fast: bool,
        star: bool,
        total: int | None,
        ordered: bool = True,
        items: list[Any] | None = None,
    ) -> tuple[Job, Backend]:
        _check_function(verb, f)
        options = _call_options(verb, kwds, self._defaults)
        backend = self._running_backend()
        job = Job(
            f,
            nodes=backend.nodes,
            chunksize=options["chunksize"],
            timeout=options["timeout"],
            retries=options["retries"],
            fail_fast=fail_fast,
            star=star,
            stream=not fail_fast,
            ordered=ordered,
        )
        attach_progress(job, options["progress"], total)
        if items:
            # All of the input is known: the job holds it before the backend sees the job,
            # so the engine is woken once, with work to do (a wake-up costs the caller the
            # time the engine's thread then holds the GIL: tens of µs per small call).
            job.feed(items, last=True)
        try:
            backend.submit(job)
        except BaseException:
            job.cancel()  # closes its progress bar
            raise
        if items is not None and not items:
            job.feed(items, last=True)  # no input: the job completes, once its backend has it
        return job, backend

    def _eager(self, verb: str, f: Any, args: tuple[Any, ...], kwds: dict[str, Any]) -> AsyncResult:
        if not args:
            raise TypeError(f"{verb}() requires at least two args")
        if _is_zero(kwds.get("chunksize")):
            # pathos 0.3.5 (multiprocessing's MapResult): chunksize=0 never calls f and
            # gives one None per item.
            _check_function(verb, f)
            kwds, f = {**kwds, "chunksize": None}, _none
        items = list(zip(*args)) if len(args) > 1 else list(args[0])
        job, backend = self._job(verb, f, kwds, fail_fast=True, star=len(args) > 1, total=len(items), items=items)
        return AsyncResult(job, single=False, on_interrupt=self._interrupt(backend))

    def _lazy(self, verb: str, f: Any, args: tuple[Any, ...], kwds: dict[str, Any], ordered: bool) -> ResultIterator:
        if not args:
            raise TypeError(f"{verb}() must have at least two arguments")
        star = len(args) > 1
        known = all(isinstance(a, (list, tuple)) for a in args)
        items = (list(zip(*args)) if star else list(args[0])) if known else None
        job, backend = self._job(
            verb, f, kwds, fail_fast=False, star=star, total=sized_total(args), ordered=ordered, items=items
        )
        source: Iterator[Any] | None = None if items is not None else zip(*args) if star else iter(args[0])
        return ResultIterator(job, source, ordered=ordered, on_interrupt=self._interrupt(backend))

    def map(self, f: Callable[..., Any], *args: Iterable[Any], **kwds: Any) -> list[Any]:
        """Run ``f(a[i], b[i], ...)`` for the items of ``args``; blocking, in order.

        Args:
            f: any callable (lambdas and closures too, on every pool).
            *args: one or more iterables, zipped like builtin ``map`` (the shortest wins).
            chunksize: items per task (default: adapted to task duration).
            timeout: seconds an item may run; a longer one raises ``TaskTimeoutError``.
            retries: re-runs of an item whose worker died.
            progress: True for a tqdm bar on stderr, a dict of tqdm options, or a
                callable given the number of items each time a batch finishes.

        Returns:
            The list of results.
        """
        result = self._eager("map", f, args, kwds)
        return result.get()  # type: ignore[no-any-return]

    def amap(self, f: Callable[..., Any], *args: Iterable[Any], **kwds: Any) -> AsyncResult:
        """Like :meth:`map` but returns at once; ``get()`` on the result gives the list."""
        return self._eager("amap", f, args, kwds)

    def imap(self, f: Callable[..., Any], *args: Iterable[Any], **kwds: Any) -> ResultIterator:
        """Like :meth:`map` but returns an iterator of results in input order.

        The input is read lazily (an infinite generator works); closing the iterator
        early cancels the rest.
        """
        return self._lazy("imap", f, args, kwds, ordered=True)

    def uimap(self, f: Callable[..., Any], *args: Iterable[Any], **kwds: Any) -> ResultIterator:
        """Like :meth:`imap` but yields results as they finish (completion order)."""
        return self._lazy("uimap", f, args, kwds, ordered=False)

    def apipe(self, f: Callable[..., Any], *args: Any, **kwds: Any) -> AsyncResult:
        """Call ``f(*args, **kwds)`` in a worker; returns at once with a result object.

        Every keyword goes to ``f``; the pool's ``timeout=`` and ``retries=`` apply.
        """
        _check_function("apipe", f)
        backend = self._running_backend()
        job = Job(
            f,
            kwds,
            nodes=backend.nodes,
            timeout=self._defaults.get("timeout"),
            retries=self._defaults.get("retries") or 0,
        )
        backend.submit(job)
        job.feed([args], last=True)
        return AsyncResult(job, single=True, on_interrupt=self._interrupt(backend))

    def pipe(self, f: Callable[..., Any], *args: Any, **kwds: Any) -> Any:
        """Call ``f(*args, **kwds)`` in a worker and return its value (blocking)."""
        return self.apipe(f, *args, **kwds).get()

    def submit(self, f: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Call ``f(*args, **kwargs)`` in a worker; returns a ``concurrent.futures.Future``.

        The future works with ``concurrent.futures.as_completed()`` and ``wait()`` and
        with ``asyncio.wrap_future()``; ``future.cancel()`` succeeds while no worker has
        picked the call up; ``future.result()`` raises the function's own exception.
        """
        return self.apipe(f, *args, **kwargs)._as_future(interrupt=False)

    # -- describing -----------------------------------------------------------------
    @property
    def nodes(self) -> int:
        """The number of workers; setting it rebuilds the cached pool."""
        return self._nodes

    @nodes.setter
    def nodes(self, value: int) -> None:
        self._serve(nodes=value)

    def __repr__(self) -> str:
        return f"<pool {type(self).__name__}(nodes={self._nodes})>"

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_own"] = None
        return state


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_parent_pools)
