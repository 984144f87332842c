"""The public pools: :class:`ProcessPool`, :class:`ThreadPool`, :class:`SerialPool` and
:class:`ParallelPool`, with the same verbs, lifecycle and pool cache as pathos 0.3.5.

Arguments are *copied* into process workers (serialized with the C pickler, or dill
where it cannot), never shared: a change a worker makes to an argument is not seen by
the caller. Thread and serial pools pass the very same objects.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar

from ._backend import Backend
from ._config import cpu_count, parse_context, parse_memory
from ._pool import TERMINATE_JOIN_SECONDS, WorkerPool
from ._stdpool import _ProcessPool, _ThreadPool

__all__ = ["ParallelPool", "ProcessPool", "SerialPool", "ThreadPool", "_ProcessPool", "_ThreadPool", "_clear"]

CLEAR_JOIN_SECONDS = TERMINATE_JOIN_SECONDS  # _clear() lets running work finish this long, then terminates it


class ProcessPool(WorkerPool):
    """A pool of worker processes (alias ``ProcessingPool``).

    Args:
        nodes: number of worker processes (also ``ncpus=`` or ``processes=``); default:
            one per core, or this worker's share of cores inside another pool.
        id: key in the pool cache (default: the node count).
        initializer: called as ``initializer(*initargs)`` in each new worker.
        initargs: arguments for ``initializer``.
        maxtasksperchild: tasks (chunks) a worker runs before it is replaced.
        context: start method, ``"fork"``, ``"spawn"`` or ``"forkserver"``, or a
            multiprocessing context (default: fork on Linux, spawn elsewhere).
        max_worker_memory: replace a worker between tasks once its resident memory
            passes this (bytes, or a string like ``"2GB"``).
        timeout: default per-item time limit in seconds for every call.
        retries: default number of re-runs of an item whose worker died.
        chunksize: default items per task.
        progress: default ``progress=`` for every map call (True for a tqdm bar).
    """

    __state__: ClassVar[dict[Any, Backend]] = {}
    _node_aliases = ("nodes", "ncpus", "processes")
    _options = ("initializer", "initargs", "maxtasksperchild", "context", "max_worker_memory")

    def __init__(self, *args: Any, **kwds: Any) -> None:
        if "initializer" in kwds and kwds["initializer"] is not None and not callable(kwds["initializer"]):
            raise TypeError(f"initializer must be callable, got {kwds['initializer']!r}")
        parse_context(kwds.get("context"))
        parse_memory(kwds.get("max_worker_memory"))
        mtpc = kwds.get("maxtasksperchild")
        if mtpc is not None and (not isinstance(mtpc, int) or mtpc < 1):
            raise ValueError(f"maxtasksperchild must be a positive int or None, got {mtpc!r}")
        super().__init__(*args, **kwds)

    def _default_nodes(self) -> int:
        from ._workers._main import cpu_budget

        budget = cpu_budget()
        return budget if budget is not None else cpu_count()

    def _make_backend(self, nodes: int) -> Backend:
        from ._backends.process import ProcessBackend

        kw = self._kwds
        return ProcessBackend(
            nodes,
            context=parse_context(kw.get("context")),
            initializer=kw.get("initializer"),
            initargs=tuple(kw.get("initargs") or ()),
            maxtasksperchild=kw.get("maxtasksperchild"),
            max_worker_memory=parse_memory(kw.get("max_worker_memory")),
            cpu_budget=max(1, cpu_count() // nodes),
        )

    @property
    def ncpus(self) -> int:
        """The number of worker processes (pathos's name); setting it rebuilds the pool."""
        return self._nodes

    @ncpus.setter
    def ncpus(self, value: int) -> None:
        self._serve(nodes=value)

    # pathos keeps the node count in ``_ProcessPool__nodes``; code in the wild reads it.
    _ProcessPool__nodes = property(lambda self: self._nodes)

    def __repr__(self) -> str:
        return f"<pool ProcessPool(ncpus={self._nodes})>"


class ThreadPool(WorkerPool):
    """A pool of threads in this process: arguments are shared, not copied.

    Args:
        nodes: number of threads (also ``nthreads=`` or ``processes=``); default: one
            per core.
        id: key in the pool cache (default: the node count).
        initializer: called as ``initializer(*initargs)`` in each new thread.
        initargs: arguments for ``initializer``.
        timeout: default per-item time limit; a thread cannot be killed, so a late item
            fails with ``TaskTimeoutError`` and its thread is abandoned and replaced.
        retries, chunksize, progress: defaults for every call.
    """

    __state__: ClassVar[dict[Any, Backend]] = {}
    _node_aliases = ("nodes", "nthreads", "processes")
    _options = ("initializer", "initargs")

    def _make_backend(self, nodes: int) -> Backend:
        from ._backends.thread import ThreadBackend

        kw = self._kwds
        return ThreadBackend(nodes, initializer=kw.get("initializer"), initargs=tuple(kw.get("initargs") or ()))

    @property
    def nthreads(self) -> int:
        """The number of threads (pathos's name); setting it rebuilds the pool."""
        return self._nodes

    @nthreads.setter
    def nthreads(self, value: int) -> None:
        self._serve(nodes=value)

    _ThreadPool__nodes = property(lambda self: self._nodes)

    def __repr__(self) -> str:
        return f"<pool ThreadPool(nthreads={self._nodes})>"


class SerialPool(WorkerPool):
    """Runs everything in the calling thread, one item after another (alias
    ``PythonSerial``): for debugging, and as the reference for the other pools.

    Accepts and ignores pathos's positional and keyword arguments; ``nodes`` is always 1.
    ``timeout=`` interrupts an item with SIGALRM when called from the main thread on Unix.
    """

    __state__: ClassVar[dict[Any, Backend]] = {}
    _cached = False

    def __init__(self, *args: Any, **kwds: Any) -> None:
        options = {k: kwds[k] for k in ("timeout", "retries", "chunksize", "progress") if k in kwds}
        super().__init__(**options)

    def _resolve_nodes(self, args: tuple[Any, ...], kwds: dict[str, Any]) -> int:
        return 1

    def _default_id(self) -> Any:
        return None

    def _make_backend(self, nodes: int) -> Backend:
        from ._backends.serial import SerialBackend

        return SerialBackend()

    @property
    def nodes(self) -> int:
        """Always 1; read-only."""
        return 1

    @nodes.setter
    def nodes(self, value: int) -> None:
        raise TypeError("nodes is a read-only attribute")

    def __repr__(self) -> str:
        return "<pool SerialPool()>"


class ParallelPool(WorkerPool):
    """A pool on Dask distributed: a local cluster by default, or a running scheduler
    given by ``servers=`` (alias ``ParallelPythonPool``). Needs Dask distributed (the
    ``dask`` extra: ``pip install ".[dask]"`` in a checkout of this project).

    Args:
        nodes: local worker processes (also ``ncpus=``); 0 runs on the servers only.
        servers: scheduler addresses, ``("tcp://host:8786",)`` or pathos's ``"host:port"``.
        id: key in the pool cache (default ``"<nodes>@<servers>"``).
        strict: raise if a server cannot be reached, instead of warning and carrying on.
        timeout, retries, chunksize, progress: defaults for every call.
    """

    __state__: ClassVar[dict[Any, Backend]] = {}
    _node_aliases = ("nodes", "ncpus")
    _options = ("servers", "strict")

    def __init__(self, *args: Any, **kwds: Any) -> None:
        servers = kwds.get("servers")
        if servers is None:
            servers = ()
        elif isinstance(servers, str):
            servers = ("*",) if servers in ("*", "autodetect") else (servers,)
        kwds["servers"] = tuple(servers)
        super().__init__(*args, **kwds)

    def _validate_nodes(self, value: Any) -> int:
        if value == 0 and not isinstance(value, bool):
            return 0  # servers only
        if value == "autodetect":
            return super()._validate_nodes(None)  # ppft's spelling of "one per core"
        return super()._validate_nodes(value)

    def _default_id(self) -> Any:
        return f"{self._nodes}@{'+'.join(sorted(self._kwds['servers']))}"

    def _make_backend(self, nodes: int) -> Backend:
        from ._backends.dask import DaskBackend

        servers, strict = self._kwds["servers"], bool(self._kwds.get("strict"))
        backend: Backend = DaskBackend(nodes, servers=servers, strict=strict)
        return backend

    @property
    def ncpus(self) -> int:
        """Local worker processes (pathos's name); setting it rebuilds the pool."""
        return self._nodes

    @ncpus.setter
    def ncpus(self, value: int) -> None:
        self._serve(nodes=value)

    @property
    def servers(self) -> Any:
        """The scheduler addresses: None when local only, as pathos reports it."""
        servers = self._kwds["servers"]
        if not servers:
            return None
        return "*" if servers == ("*",) else servers

    @servers.setter
    def servers(self, value: Any) -> None:
        self._kwds["servers"] = () if value is None else tuple(value) if not isinstance(value, str) else (value,)
        self._serve()

    _ParallelPool__nodes = property(lambda self: self._nodes)

    def __repr__(self) -> str:
        return f"<pool ParallelPool(ncpus={self._nodes}, servers={self.servers})>"


_POOLS = (ProcessPool, ThreadPool, ParallelPool, SerialPool)


def _clear(type: Any = None) -> None:
    """Shut down and forget the cached pools of every pool class, or of one.

    pathos only forgot them, leaving their workers running; here each is closed and
    joined first, so nothing outlives the call. The wait is bounded: work still running
    after ``CLEAR_JOIN_SECONDS`` (a stuck task) is terminated, its call fails with
    ``PoolClosedError``, and each engine is then waited for ``TERMINATE_JOIN_SECONDS``
    at most, as ``terminate()`` does.

    Raises:
        NotImplementedError: for ``_ProcessPool``/``_ThreadPool`` (use their close()).
        TypeError: ``type`` is not one of the pathos pools.
    """
    if type is None:
        classes: tuple[Any, ...] = _POOLS
    elif type in (_ProcessPool, _ThreadPool):
        raise NotImplementedError("use the close() method to shutdown")
    elif type in _POOLS:
        classes = (type,)
    else:
        raise TypeError(f"'{type}' is not one of the pathos.pools")
    backends: list[Backend] = []
    for cls in classes:
        backends.extend(cls.__state__.values())
        cls.__state__.clear()
    for backend in backends:
        backend.close()
    deadline = time.monotonic() + CLEAR_JOIN_SECONDS  # one bound for all of them together
    for backend in backends:
        backend.join(max(0.0, deadline - time.monotonic()))
    for backend in backends:
        if not backend.joined():  # still running after the grace period: stop it as terminate() does
            backend.terminate()
            backend.join(TERMINATE_JOIN_SECONDS)
