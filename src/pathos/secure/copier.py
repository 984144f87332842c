"""``Copier``: copy files between machines with scp (or another copy program)."""

from __future__ import annotations

from typing import Any, Optional

from ..connection import Pipe as _Pipe
from .connection import ssh_options

__all__ = ["Copier", "FileNotFound"]


class FileNotFound(Exception):
    """A source or destination was not in the form ``[[user@]host:]path``."""


class Copier(_Pipe):
    """``scp [options] source destination``, launched like any :class:`~pathos.connection.Pipe`.

    Args:
        name: an identifier (default: 16 random letters).
        source: what to copy, ``[[user@]host:]path`` (default ``'.'``); shell text, so
            several quoted sources or a glob work.
        destination: where to, ``[[user@]host:]path`` (default ``'.'``).
        launcher: the copy program (default ``'scp'``; ``'cp'`` for local copies).
        options: its options, e.g. ``'-r'`` (default ``''``).
        background, decode, stdin: as for :class:`pathos.connection.Pipe`.

    ``command=`` is not a setting of a copier (``KeyError``).
    """

    _keys = {"source": "source", "destination": "destination", "launcher": "launcher", "options": "options"}
    _keys.update({k: v for k, v in _Pipe._keys.items() if k != "command"})
    _names = ("source", "destination", "launcher", "options", "background", "stdin", "codec")

    def __init__(self, name: Optional[str] = None, **kwds: Any) -> None:
        self.launcher: str = kwds.pop("launcher", "scp")
        self.options: str = kwds.pop("options", "")
        self.source: str = kwds.pop("source", ".")
        self.destination: str = kwds.pop("destination", ".")
        super().__init__(name, **kwds)

    def _set(self, key: str, value: Any) -> None:
        if key == "command":
            raise KeyError("command")
        super()._set(key, value)

    def _compose(self) -> str:
        parts = (self.launcher, ssh_options(self.launcher), self.options, self.source, self.destination)
        return " ".join(part for part in parts if part)
