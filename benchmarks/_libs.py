"""One adapter per library: start a pool, map over it, stop it, in each library's usual way.

Every adapter runs in a subprocess of its own (see ``_measure.py``), so ours and the real
pathos 0.3.5, which share the import name ``pathos``, never meet in one interpreter.
``IMPORT`` is the import statement a program writes to get the library's pool, timed by
the ``import`` workload. This module imports nothing at run time but ``os`` (``typing``
only for the type checker), so the cold-start child (``_cold.py``) that imports it before
starting its clock charges every library its own imports and nothing else.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # not typing.TYPE_CHECKING: importing typing is itself a cost to keep out
if TYPE_CHECKING:
    from typing import Any, Callable, Iterable, Optional

    Func = Callable[..., Any]


def _dist_version(name: str) -> str:
    from importlib.metadata import version

    return version(name)


class Adapter:
    """The interface: ``start`` a pool of ``nodes`` workers, ``map``, ``stop``.

    ``chunksize=None`` means the library's own default chunking.
    """

    label = ""
    IMPORT = ""

    def __init__(self, nodes: int) -> None:
        self.nodes = nodes

    def start(self) -> None:
        raise NotImplementedError

    def map(self, f: Func, items: Iterable[Any], chunksize: Optional[int] = None) -> list[Any]:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def version(self) -> str:
        raise NotImplementedError


class Ours(Adapter):
    """This project's ``pathos.pools.ProcessPool``, imported from ``src/``."""

    label = "ours"
    IMPORT = "import pathos.multiprocessing"

    def start(self) -> None:
        from pathos.pools import ProcessPool

        self.pool = ProcessPool(nodes=self.nodes)

    def map(self, f: Func, items: Iterable[Any], chunksize: Optional[int] = None) -> list[Any]:
        if chunksize is None:
            return list(self.pool.map(f, items))
        return list(self.pool.map(f, items, chunksize=chunksize))

    def stop(self) -> None:
        self.pool.clear()

    def version(self) -> str:
        import pathos

        return f"{pathos.__version__} ({os.path.dirname(pathos.__file__)})"


class Pathos035(Ours):
    """The real pathos 0.3.5, imported from its own ``--target`` directory."""

    label = "pathos 0.3.5"

    def stop(self) -> None:
        # pathos 0.3.5's clear() only forgets the pool; close and join so no worker lingers.
        self.pool.close()
        self.pool.join()
        self.pool.clear()


class MultiprocessingPool(Adapter):
    """``multiprocessing.Pool`` (fork on Linux), default chunksize ``n / (4 * workers)``."""

    label = "multiprocessing.Pool"
    IMPORT = "import multiprocessing"

    def start(self) -> None:
        import multiprocessing

        self.pool = multiprocessing.Pool(self.nodes)

    def map(self, f: Func, items: Iterable[Any], chunksize: Optional[int] = None) -> list[Any]:
        return self.pool.map(f, items, chunksize)

    def stop(self) -> None:
        self.pool.close()
        self.pool.join()

    def version(self) -> str:
        import platform

        return f"stdlib (Python {platform.python_version()})"


class ConcurrentFutures(Adapter):
    """``concurrent.futures.ProcessPoolExecutor``, default chunksize 1."""

    label = "concurrent.futures"
    IMPORT = "from concurrent.futures import ProcessPoolExecutor"

    def start(self) -> None:
        from concurrent.futures import ProcessPoolExecutor

        self.pool = ProcessPoolExecutor(max_workers=self.nodes)

    def map(self, f: Func, items: Iterable[Any], chunksize: Optional[int] = None) -> list[Any]:
        return list(self.pool.map(f, items, chunksize=chunksize or 1))

    def stop(self) -> None:
        self.pool.shutdown(wait=True)

    def version(self) -> str:
        import platform

        return f"stdlib (Python {platform.python_version()})"


class Loky(Adapter):
    """``loky.get_reusable_executor(...).map``, default chunksize 1."""

    label = "loky"
    IMPORT = "from loky import get_reusable_executor"

    def start(self) -> None:
        from loky import get_reusable_executor

        self.pool = get_reusable_executor(max_workers=self.nodes)

    def map(self, f: Func, items: Iterable[Any], chunksize: Optional[int] = None) -> list[Any]:
        return list(self.pool.map(f, items, chunksize=chunksize or 1))

    def stop(self) -> None:
        self.pool.shutdown(wait=True)

    def version(self) -> str:
        return _dist_version("loky")


class Joblib(Adapter):
    """``joblib.Parallel(n_jobs=...)`` (loky backend) with ``delayed``, automatic batching."""

    label = "joblib"
    IMPORT = "from joblib import Parallel, delayed"

    def start(self) -> None:
        from joblib import Parallel

        self.pool = Parallel(n_jobs=self.nodes)

    def map(self, f: Func, items: Iterable[Any], chunksize: Optional[int] = None) -> list[Any]:
        from joblib import Parallel, delayed

        parallel = self.pool if chunksize is None else Parallel(n_jobs=self.nodes, batch_size=chunksize)
        return list(parallel(delayed(f)(x) for x in items))

    def stop(self) -> None:
        # joblib keeps loky's reusable executor between calls; shut it so a new start is real.
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)

    def version(self) -> str:
        return _dist_version("joblib")


class Mpire(Adapter):
    """``mpire.WorkerPool(n_jobs=...).map``; ``keep_alive=True`` so a warmed pool stays warm."""

    label = "mpire"
    IMPORT = "from mpire import WorkerPool"

    def start(self) -> None:
        from mpire import WorkerPool

        self.pool = WorkerPool(n_jobs=self.nodes, keep_alive=True)

    def map(self, f: Func, items: Iterable[Any], chunksize: Optional[int] = None) -> list[Any]:
        # mpire would glue numpy results into one array; keep a list, as every other library returns.
        return list(self.pool.map(f, items, chunk_size=chunksize, concatenate_numpy_output=False))

    def stop(self) -> None:
        self.pool.stop_and_join()

    def version(self) -> str:
        return _dist_version("mpire")


ADAPTERS: dict[str, type[Adapter]] = {
    "ours": Ours,
    "pathos035": Pathos035,
    "multiprocessing": MultiprocessingPool,
    "futures": ConcurrentFutures,
    "loky": Loky,
    "joblib": Joblib,
    "mpire": Mpire,
}
