"""The errors pathos raises, named for what happened.

::

    Exception
    ├── PathosError                      base of everything below
    │   ├── PoolClosedError (ValueError)      the pool was closed or terminated
    │   ├── WorkerCrashedError (RuntimeError) a worker died while running a task
    │   ├── WorkerInitError (RuntimeError)    the pool's initializer raised
    │   ├── ClusterError (ConnectionError)    a Dask scheduler could not be reached,
    │   │                                     or was lost during a call
    │   ├── TaskTimeoutError (TimeoutError)   a task ran past its ``timeout=``
    │   ├── SerializationError (pickle.PicklingError)
    │   │                                     an argument, result or exception would
    │   │                                     not serialize; names the object and task
    │   ├── RemoteError                        a worker's exception that could not be
    │   │                                     rebuilt here; carries its text
    │   └── ResultTimeoutError (multiprocessing.TimeoutError, TimeoutError)
    │                                         ``get(timeout)`` waited too long; the work
    │                                         goes on
    └── RemoteTraceback                   set as ``__cause__`` of a worker's exception

A worker's own exception is re-raised with its own type and arguments; its traceback in
the worker is attached as ``exc.__cause__``, a :class:`RemoteTraceback`.
"""

from __future__ import annotations

import multiprocessing
import pickle
from typing import Any, TypeVar

_E = TypeVar("_E", bound=type)

__all__ = [
    "ClusterError",
    "PathosError",
    "PoolClosedError",
    "RemoteError",
    "RemoteTraceback",
    "ResultTimeoutError",
    "SerializationError",
    "TaskTimeoutError",
    "WorkerCrashedError",
    "WorkerInitError",
]


def public(cls: _E) -> _E:
    """Show ``cls`` as ``pathos.Name`` (in tracebacks, reprs and pickles), where users import it.

    ``pickle`` finds a class by ``__module__`` and ``__qualname__``, so every class
    marked here must be importable from the top-level ``pathos`` package.
    """
    cls.__module__ = "pathos"
    return cls


@public
class PathosError(Exception):
    """Base class of the errors raised by pathos itself."""


@public
class PoolClosedError(PathosError, ValueError):
    """A call was made on a pool that was closed or terminated (a ``ValueError``)."""


@public
class WorkerCrashedError(PathosError, RuntimeError):
    """A worker process died while it ran a task.

    Attributes:
        pid: the worker's process id.
        exitcode: its exit code (negative: killed by a signal), or None.
        signal: the name of the signal that killed it (``"SIGKILL"``), or None.
        task: the index of the item whose task was running (the first of its chunk).
    """

    def __init__(
        self,
        message: str,
        *,
        pid: int | None = None,
        exitcode: int | None = None,
        signal: str | None = None,
        task: int | None = None,
    ) -> None:
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode
        self.signal = signal
        self.task = task

    def __reduce__(self) -> Any:
        kw = {"pid": self.pid, "exitcode": self.exitcode, "signal": self.signal, "task": self.task}
        return (_rebuild_with_kwargs, (type(self), self.args, kw))


@public
class WorkerInitError(PathosError, RuntimeError):
    """The pool's ``initializer`` raised in a new worker; its exception is the ``__cause__``."""


@public
class ClusterError(PathosError, ConnectionError):
    """A Dask scheduler could not be reached, or the connection to it was lost.

    Attributes:
        address: the scheduler's address, or None when no scheduler was involved.
    """

    def __init__(self, message: str, *, address: str | None = None) -> None:
        super().__init__(message)
        self.address = address

    def __reduce__(self) -> Any:
        return (_rebuild_with_kwargs, (type(self), self.args, {"address": self.address}))


@public
class TaskTimeoutError(PathosError, TimeoutError):
    """A task ran longer than its ``timeout=``; its worker was killed and replaced.

    Attributes:
        task: the index of the item that timed out.
        timeout: the limit, in seconds.
    """

    def __init__(self, message: str, *, task: int | None = None, timeout: float | None = None):
        super().__init__(message)
        self.task = task
        self.timeout = timeout

    def __reduce__(self) -> Any:
        return (_rebuild_with_kwargs, (type(self), self.args, {"task": self.task, "timeout": self.timeout}))


@public
class SerializationError(PathosError, pickle.PicklingError):
    """An object would not serialize (or deserialize) on its way to or from a worker."""


@public
class RemoteError(PathosError):
    """A worker raised an exception that could not be rebuilt in this process.

    Attributes:
        type_name: the qualified name of the worker's exception type.
        text: ``str()`` of that exception.
        traceback: the worker's formatted traceback.
    """

    def __init__(self, type_name: str, text: str, traceback: str) -> None:
        super().__init__(f"{type_name}: {text}")
        self.type_name = type_name
        self.text = text
        self.traceback = traceback

    def __reduce__(self) -> Any:
        return (type(self), (self.type_name, self.text, self.traceback))

    def __str__(self) -> str:
        return f"{self.type_name}: {self.text}\n\nRemote traceback:\n{self.traceback}"


@public
class ResultTimeoutError(PathosError, multiprocessing.TimeoutError, TimeoutError):
    """``get(timeout)`` or ``wait`` ran out of time; the work itself goes on."""


@public
class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker, shown as its ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return f'\n"""\n{self.tb}"""'


def _rebuild_with_kwargs(cls: type, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return cls(*args, **kwargs)
