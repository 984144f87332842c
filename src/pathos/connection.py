"""Run a shell command on this machine and read what it prints (pathos 0.3.5's ``Pipe``).

    >>> from pathos.connection import Pipe
    >>> pipe = Pipe()
    >>> pipe(command="echo hello")                      # configure (same as pipe.config(...))
    {...}
    >>> pipe.launch()
    >>> pipe.response()
    'hello\\n'

In the foreground (the default) ``response()`` waits for the command to finish and
returns its standard output; its standard error goes where this process's goes. With
``background=True`` the command runs on its own (in a session of its own, so Ctrl-C at
the terminal does not reach it), standard error joins standard output, and
``response()`` waits at most 2 seconds: it returns all the output so far, or None if
there is none yet and the command still runs. ``pid()`` is the background command's
process id (0 in the foreground), ``kill()`` stops it and whatever it started.
:class:`pathos.secure.Pipe` runs the command on another machine over ssh.
"""

from __future__ import annotations

import io
import logging
import os
import random
import selectors
import signal
import string
import subprocess
import sys
import tempfile
import time
import warnings
from typing import IO, Any, Callable, Optional

from ._errors import PathosError
from .selector import Selector as Selector  # pathos 0.3.5 had these two here too
from .util import _str as _str

__all__ = ["Pipe", "PipeException"]

RESPONSE_SECONDS = 2.0  # how long response() waits on a background command
KILL_SECONDS = 5.0  # how long kill() waits after SIGTERM before SIGKILL


class PipeException(PathosError):
    """A command could not be launched, failed, or its pipe was used before ``launch()``."""


def _random_name() -> str:
    return "".join(random.choice(string.ascii_letters) for _ in range(16))


class Pipe:
    """A shell command on this machine, launched in the foreground or the background.

    Args:
        name: an identifier (default: 16 random letters).
        command: the shell command (default ``'echo <name>'``).
        background: run it in the background (default False).
        decode: the codec of the response (default ``'ascii'``, also for None or True;
            undecodable bytes are replaced); False returns bytes.
        stdin: the command's standard input: a file with a descriptor, a file-like
            object whose content is sent, ``subprocess.PIPE``/``DEVNULL`` or a
            descriptor. The default is this process's standard input in the
            foreground and nothing (``/dev/null``) in the background.
    """

    verbose = False  # pathos 0.3.5 printed "Kill pid=..." and such when True
    _preexec: Optional[Callable[[], None]] = None  # run in the child before the command
    _debug = logging.getLogger("pathos")
    _keys: dict[str, str] = {"command": "_command", "background": "background", "decode": "codec", "stdin": "stdin"}
    _names: tuple[str, ...] = ("message", "background", "stdin", "codec")

    def __init__(self, name: Optional[str] = None, **kwds: Any) -> None:
        self.name = _random_name() if name is None else name
        self.background: bool = bool(kwds.pop("background", False))
        self.stdin: Any = kwds.pop("stdin", sys.stdin)
        self.codec: Any = kwds.pop("decode", "ascii")
        self._command: str = kwds.pop("command", f"echo {self.name}")
        self.message = ""
        self._process: Optional[subprocess.Popen[bytes]] = None
        self._pid = 0
        self._buffer = bytearray()
        self._eof = False
        self.config(**kwds)

    def __repr__(self) -> str:
        return f"Pipe('{self.message}')"

    def config(self, **kwds: Any) -> dict[str, Any]:
        """Change the settings given as keywords (those of the constructor) and return them all.

        A reconfigured pipe must be launched again before ``response()``. An unknown
        keyword is ignored with a ``RuntimeWarning``.
        """
        for key, value in kwds.items():
            self._set(key, value)
        if self.stdin is None:
            self.stdin = sys.stdin
        if self.codec is None:
            self.codec = "ascii"
        self.message = self._compose()
        self._process = None
        return {name: getattr(self, name) for name in self._names}

    __call__ = config

    def _set(self, key: str, value: Any) -> None:
        attr = self._keys.get(key)
        if attr is None:  # 0.3.5 ignored these silently (its own examples pass rhost=)
            known = ", ".join(sorted(self._keys))
            message = f"{type(self).__name__} ignores the unknown keyword {key!r}; it takes {known}"
            warnings.warn(message, RuntimeWarning, stacklevel=4)
            return
        setattr(self, attr, bool(value) if key == "background" else value)

    def _compose(self) -> str:
        """The shell command line that ``launch()`` runs."""
        return self._command

    def launch(self) -> None:
        """Run the configured command (see :attr:`message`)."""
        self._buffer = bytearray()
        self._eof = False
        self._execute()

    def _execute(self) -> None:
        """Start the process (a subclass may run the command another way)."""
        stdin = self._stdin_for_launch()
        try:
            self._process = subprocess.Popen(
                self.message,
                shell=True,
                stdin=stdin,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT if self.background else None,
                close_fds=True,
                start_new_session=self.background,  # kill() ends the whole group
                preexec_fn=self._preexec,
            )
        except (OSError, ValueError) as exc:
            raise PipeException(f"failure to pipe: {self.message} ({exc})") from exc
        finally:
            if isinstance(stdin, io.IOBase) and stdin is not self.stdin:
                stdin.close()  # our temporary copy of a file-like stdin
        self._pid = self._process.pid if self.background else 0

    def _stdin_for_launch(self) -> Any:
        stdin = self.stdin
        if isinstance(stdin, int):
            return stdin
        if stdin is sys.stdin or stdin is sys.__stdin__:
            if self.background or not _has_fileno(stdin):
                return subprocess.DEVNULL  # a background command must not read the terminal
            return stdin
        if _has_fileno(stdin):
            return stdin
        if hasattr(stdin, "read"):  # StringIO and friends: send a copy of the content
            data = stdin.read()
            copy = tempfile.TemporaryFile()  # noqa: SIM115 (closed by launch() once the command has it)
            copy.write(data.encode() if isinstance(data, str) else data)
            copy.seek(0)
            return copy
        raise TypeError(f"stdin must be a file, a file-like object or a descriptor, got {stdin!r}")

    def response(self) -> Any:
        """The command's output, decoded (see ``decode``).

        In the foreground, waits for the command to finish. In the background, waits
        up to 2 seconds for it to finish; returns the output so far, or None if there
        is none yet.

        Raises:
            PipeException: the pipe was not launched since it was last configured.
        """
        if self._process is None:
            raise PipeException("'launch' is required after any reconfiguration")
        self._read(None, RESPONSE_SECONDS if self.background else None)
        if not self._buffer and not self._eof:
            return None
        return self._decode(bytes(self._buffer))

    def _decode(self, data: bytes) -> Any:
        codec = self.codec
        if codec is False:
            return data
        return data.decode("ascii" if codec is True else codec, errors="replace")

    def _read(self, until: Optional[Callable[[bytes], bool]], timeout: Optional[float]) -> None:
        """Read output into the buffer until EOF, ``until(buffer)`` or ``timeout`` seconds."""
        process = self._process
        if process is None or process.stdout is None:
            return
        fd = process.stdout.fileno()
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:  # not select(): fds past 1024 work too
            selector.register(fd, selectors.EVENT_READ)
            while not self._eof and not (until is not None and until(bytes(self._buffer))):
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not selector.select(wait):
                    return
                chunk = os.read(fd, 65536)
                if chunk:
                    self._buffer += chunk
                else:
                    self._eof = True
                    process.poll()

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait up to ``timeout`` seconds (None: for ever) for the command to end; its exit status or None."""
        process = self._process
        if process is None:
            raise PipeException("'launch' is required after any reconfiguration")
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def pid(self) -> int:
        """The background command's process id (0 for a foreground command)."""
        return self._pid

    def kill(self) -> None:
        """Stop the command if it still runs (SIGTERM, then SIGKILL after 5 s), with what it started."""
        process = self._process
        if process is not None and process.poll() is None:
            if self.verbose:
                print(f"Kill pid={process.pid}")
            _signal(process, signal.SIGTERM)
            try:
                process.wait(KILL_SECONDS)
            except subprocess.TimeoutExpired:
                _signal(process, signal.SIGKILL)
                process.wait(KILL_SECONDS)
        self._pid = 0


def _signal(process: subprocess.Popen[bytes], sig: int) -> None:
    """Send ``sig`` to a background command's whole group, else to the process itself."""
    try:
        if os.getpgid(process.pid) == process.pid:  # a session of its own: the background case
            os.killpg(process.pid, sig)
        else:
            process.send_signal(sig)
    except ProcessLookupError:
        pass


def _has_fileno(stream: IO[Any] | Any) -> bool:
    try:
        stream.fileno()
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        return False
    return True
