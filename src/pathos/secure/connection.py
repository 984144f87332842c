"""``Pipe``: a shell command run on another machine over ssh."""

from __future__ import annotations

import os
import shlex
from typing import Any, Optional

from ..connection import Pipe as _Pipe

__all__ = ["Pipe", "ssh_options"]

OPTIONS_VARIABLE = "PATHOS_SSH_OPTIONS"


def ssh_options(launcher: str) -> str:
    """The options from ``$PATHOS_SSH_OPTIONS`` if ``launcher`` is ssh or scp, else ''."""
    words = launcher.split()
    if words and os.path.basename(words[0]) in ("ssh", "scp"):
        return os.environ.get(OPTIONS_VARIABLE, "").strip()
    return ""


class Pipe(_Pipe):
    """A command sent to ``host`` with ssh: ``ssh [options] host 'command'``.

    Args:
        name: an identifier (default: 16 random letters).
        host: the machine (``user@host`` works, and any alias of ``~/.ssh/config``;
            default ``'localhost'``).
        command: the command, run by the remote user's shell (default ``'echo <name>'``).
        launcher: the program that connects (default ``'ssh'``).
        options: its options, e.g. ``'-q'``, ``'-p 2222'`` (default ``''``).
        background, decode, stdin: as for :class:`pathos.connection.Pipe`.

    The command is quoted for the local shell, so the remote shell sees it as written:
    ``$HOME``, ``~`` and pipes in it are those of the remote machine. ``kill()`` stops the
    local ssh; the remote command then ends when it next writes output or reads input,
    so stop one that does neither with :func:`pathos.core.kill` (its pid from
    :func:`pathos.core.getpid`).
    """

    _keys = {**_Pipe._keys, "host": "host", "launcher": "launcher", "options": "options"}
    _names = ("message", "host", "launcher", "options", "background", "stdin", "codec")

    def __init__(self, name: Optional[str] = None, **kwds: Any) -> None:
        self.launcher: str = kwds.pop("launcher", "ssh")
        self.options: str = kwds.pop("options", "")
        self.host: str = kwds.pop("host", "localhost")
        super().__init__(name, **kwds)

    def _compose(self) -> str:
        command = shlex.quote(self._command) if self._command else ""
        parts = (self.launcher, ssh_options(self.launcher), self.options, self.host, command)
        return " ".join(part for part in parts if part)
