"""pathos's abstract interfaces: ``AbstractWorkerPool`` and ``AbstractPipeConnection``."""

from __future__ import annotations

from typing import Any

from ._pool import AbstractWorkerPool as AbstractWorkerPool

__all__ = ["AbstractPipeConnection", "AbstractWorkerPool"]


class AbstractPipeConnection:
    """The interface of a pipe-based launcher (pathos's ``connection.Pipe`` base)."""

    def __init__(self, *args: Any, **kwds: Any) -> None:
        self.name = kwds.get("name", args[0] if args else None)

    def __repr__(self) -> str:
        return f"<pipe {self.name}>"
