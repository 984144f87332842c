"""pathos's abstract interfaces: ``AbstractWorkerPool`` and ``AbstractPipeConnection``."""

from __future__ import annotations

from typing import Any

from ._pool import AbstractWorkerPool as AbstractWorkerPool

__all__ = ["AbstractPipeConnection", "AbstractWorkerPool"]


class AbstractPipeConnection:
    """The base of pipe-based launchers (pathos's ``connection.Pipe``): takes and keeps
    nothing; subclasses say what to launch."""

    def __init__(self, *args: Any, **kwds: Any) -> None:
        pass

    def __repr__(self) -> str:
        return f"<pipe {type(self).__name__}>"
