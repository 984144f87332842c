"""Run commands, copy files, find and stop processes, open tunnels and start Dask servers,
on this machine or on another one over ssh (pathos 0.3.5's ``pathos.core``).

    >>> from pathos import core
    >>> core.execute("hostname", host="remote.example.org", bg=False).response()  # doctest: +SKIP
    >>> core.copy("data.csv", "remote.example.org:~/")                            # doctest: +SKIP
    >>> tunnel = core.connect("remote.example.org", 8786)                         # doctest: +SKIP

To run a :class:`~pathos.pools.ParallelPool` on a machine you can ssh to::

    port = core.randomport(host)                  # a free port over there
    server = core.serve("dask", host, port)       # a Dask scheduler and worker there
    tunnel = core.connect(host, port)             # this machine's tunnel._lport -> it
    pool = ParallelPool(nodes=0, servers=(f"localhost:{tunnel._lport}",))

A ``host`` of None means this machine. Every remote call runs ``ssh`` (see
:mod:`pathos.secure` for options). Process lookups parse ``ps -e -o pid,ppid,pgid,args``.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
from numbers import Integral
from typing import Any, Optional, Union

import pathos as pathos  # 0.3.5's pathos.core has the package as a name; code reaches it as core.pathos

from . import connection, hosts, secure
from ._version import __version__

__all__ = ["connect", "copy", "execute", "getchild", "getpid", "getppid", "kill", "randomport", "serve"]

_log = logging.getLogger("pathos")
PS = "ps -e -o pid= -o ppid= -o pgid= -o args="
SERVE_SECONDS = 120.0  # bound on a Dask scheduler and its workers coming up
DASK_SERVERS = ("dask", "ppserver", "dask-scheduler")
_PORT_CODE = 'import socket; s = socket.socket(); s.bind(("", 0)); print(s.getsockname()[1])'
Launcher = Union[connection.Pipe, secure.Pipe]


def execute(command: str, host: Optional[str] = None, bg: bool = True, **kwds: Any) -> Launcher:
    """Launch ``command`` here, or on ``host`` over ssh; returns the launched pipe.

    Read what it printed with ``.response()``, stop it with ``.kill()``.

    Args:
        command: a shell command.
        host: where to run it (None or '': this machine).
        bg: run it in the background (default True): ``response()`` then waits at
            most 2 s. With ``bg=False``, ``response()`` waits for the command to end.
        **kwds: settings of the pipe (``options`` of ssh, default ``'-q'``;
            ``stdin``, ``decode``, ``name``, ``launcher``).
    """
    kwds["background"] = bool(bg)
    launcher: Launcher
    if host in (None, ""):
        kwds.pop("options", None)  # ssh's options: nothing to do here (0.3.5 ignored them too)
        launcher = connection.Pipe(**kwds)
        launcher(command=command)
    else:
        kwds.setdefault("options", "-q")
        launcher = secure.Pipe(**kwds)
        launcher(command=command, host=host)
    _log.info("executing {%s}", launcher.message)
    launcher.launch()
    return launcher


def copy(source: str, destination: Optional[str] = None, **kwds: Any) -> secure.Copier:
    """Copy ``source`` to ``destination`` (default: the current directory); returns the copier.

    With a ``host:`` in either path this runs ``scp -q -r``, else ``cp -r``.
    In the foreground (the default, ``bg=False``) it waits for the copy to finish.

    Raises:
        PipeException: the copy failed (its message is on standard error).
    """
    if destination is None:
        destination = os.getcwd()
    options = kwds.pop("options", None)
    kwds["background"] = bool(kwds.pop("bg", False))
    copier = secure.Copier(**kwds)
    if ":" in source or ":" in destination:
        copier(options="-q -r" if options is None else options, source=source, destination=destination)
    else:
        copier(launcher="cp", options="-r" if options is None else options, source=source, destination=destination)
    _log.info("executing {%s}", copier.message)
    copier.launch()
    if not copier.background:
        copier.response()
        status = copier.wait()
        if status:
            raise connection.PipeException(f"copy failed with exit status {status}: {copier.message}")
    return copier


def kill(pid: int, host: Optional[str] = None, **kwds: Any) -> str:
    """Send SIGTERM to process ``pid`` here or on ``host``; returns the command's output ('').

    Raises:
        OSError: there is no such process.
    """
    pid = int(pid)
    getpid(pid, host)  # OSError if there is no such process
    if host in (None, ""):
        os.kill(pid, signal.SIGTERM)
        return ""
    kwds.setdefault("stdin", subprocess.DEVNULL)
    response: str = execute(f"kill -TERM {pid}", host, bg=False, **kwds).response()
    return response


def _processes(host: Optional[str], **kwds: Any) -> list[tuple[int, int, int, str]]:
    """``(pid, ppid, pgid, command line)`` of every process here or on ``host``."""
    kwds.setdefault("stdin", subprocess.DEVNULL)
    launcher = execute(PS, host, bg=False, **kwds)
    text = launcher.response() or ""
    table = []
    for line in text.splitlines():
        fields = line.split(None, 3)
        if len(fields) < 3 or not all(f.isdigit() for f in fields[:3]):
            continue
        args = fields[3] if len(fields) > 3 else ""
        if PS in args:  # the ps we just ran, and its shells
            continue
        table.append((int(fields[0]), int(fields[1]), int(fields[2]), args))
    if not table:
        where = host or "this machine"
        raise OSError(f"could not list the processes on {where} with `{PS}` (got {text[-200:]!r})")
    return table


def getpid(target: Any = None, host: Optional[str] = None, all: bool = False, **kwds: Any) -> Any:
    """The id of a process found by name, here or on ``host``.

    Args:
        target: a regular expression searched in each process's command line, or a
            process id (to check that it exists). None: this Python process.
        host: where to look (None: this machine).
        all: return the matching lines of ``ps`` (``pid ppid pgid command``) instead.

    Returns:
        The highest matching process id (the most recent, usually), or the lines.

    Raises:
        OSError: no process matches.
    """
    if target is None and not all:
        if host:
            raise OSError("[Errno 3] No such process: give a target to look for on a remote host")
        return os.getpid()
    table = _processes(host, **kwds)
    if target is None:
        found = table
    elif isinstance(target, Integral):
        found = [row for row in table if row[0] == int(target)]
    else:
        found = [row for row in table if _matches(str(target), row[3])]
    if all:
        return "\n".join(f"{p} {pp} {g} {args}" for p, pp, g, args in found)
    if not found:
        raise OSError(f"[Errno 3] No such process: {target!r} on {host or 'this machine'}")
    return max(row[0] for row in found)


def _matches(pattern: str, line: str) -> bool:
    try:
        return re.search(pattern, line) is not None
    except re.error:
        return pattern in line


def getppid(pid: Optional[int] = None, host: Optional[str] = None, group: bool = False) -> int:
    """The parent (or, with ``group=True``, the process group) of ``pid``.

    ``pid=None`` means this Python process (on this machine only).

    Raises:
        OSError: there is no such process.
    """
    if pid is None:
        if host:
            raise OSError("[Errno 3] No such process: give a pid to look up on a remote host")
        return os.getpgrp() if group else os.getppid()
    for p, ppid, pgid, _ in _processes(host):
        if p == int(pid):
            return pgid if group else ppid
    raise OSError(f"[Errno 3] No such process: {pid} on {host or 'this machine'}")


def getchild(pid: Optional[int] = None, host: Optional[str] = None, group: bool = False) -> list[int]:
    """The children of ``pid`` (or, with ``group=True``, the members of process group ``pid``).

    ``pid=None`` means this Python process (on this machine only).

    Raises:
        OSError: there is no such process (or group).
    """
    if pid is None:
        if host:
            raise OSError("[Errno 3] No such process: give a pid to look up on a remote host")
        pid = os.getpid()
    pid = int(pid)
    table = _processes(host)
    if group:  # the members of the group, its leader too
        children = sorted(p for p, _, pgid, _ in table if pgid == pid)
    else:
        children = sorted(p for p, ppid, _, _ in table if ppid == pid)
    if children or (not group and any(row[0] == pid for row in table)):
        return children
    raise OSError(f"[Errno 3] No such process: {pid} on {host or 'this machine'}")


def randomport(host: Optional[str] = None) -> int:
    """A free TCP port here, or on ``host`` (found by a short Python run there over ssh).

    Raises:
        TunnelException: no port could be found on ``host``.
    """
    from .portpicker import randomport as local_port

    if not host:
        return local_port()
    command = f"python3 -c '{_PORT_CODE}' || python -c '{_PORT_CODE}'"
    launcher = secure.Pipe(command=command, host=host, background=False, stdin=subprocess.DEVNULL)
    _log.info("executing {%s}", launcher.message)
    launcher.launch()
    text = launcher.response() or ""
    try:
        return int(text.split()[-1])
    except (IndexError, ValueError):
        raise secure.TunnelException(f"failure to pick a remote port on {host}: {text.strip()!r}") from None


def connect(host: str, port: Optional[int] = None, through: Optional[str] = None) -> secure.Tunnel:
    """Open an ssh tunnel to ``port`` on ``host``; returns the :class:`~pathos.secure.Tunnel`.

    The local end is ``tunnel._lport`` (see :meth:`pathos.secure.Tunnel.connect`).
    """
    tunnel = secure.Tunnel()
    tunnel.connect(host, port, through)
    return tunnel


def serve(
    server: str,
    host: Optional[str] = None,
    port: Optional[int] = None,
    profile: Optional[str] = ".bash_profile",
    **kwds: Any,
) -> Launcher:
    """Start a server here or on ``host``; returns its launcher (``kill()`` stops it).

    ``server="dask"`` (or ``"ppserver"``, which pathos 0.3.5 started here) starts a Dask
    scheduler listening on 127.0.0.1:``port`` of ``host`` and Dask workers connected to
    it, and returns once the workers are up. Reach it from here through
    :func:`connect` (``ParallelPool(nodes=0, servers=(f"localhost:{tunnel._lport}",))``).
    It stops when the launcher is killed, when this Python process ends, or when the
    ssh connection breaks. Any other ``server`` runs ``~/bin/<server>.py -p <port>``.

    Args:
        server: ``"dask"`` (or ``"ppserver"``), or the name of a script in ``~/bin``.
        host: where (None: this machine).
        port: the scheduler's port there (default: a free one, see :func:`randomport`).
        profile: a shell profile on ``host`` (relative to its home) read first when it
            exists, so that ``PATH`` is set as in a login shell; None or '' for none.
            The profile registered with :mod:`pathos.hosts` for ``host``, if any, wins.
        python: the Python on ``host`` that has pathos and Dask (default ``'python3'``).
        workers: Dask worker processes (default 1); ``nthreads``: threads each (default 1).
        timeout: seconds to wait for the scheduler and workers (default 120).

    Raises:
        PipeException: the server did not come up (its output is in the message).
    """
    if host and host in hosts.get_profiles():
        profile = hosts.get_profile(host)
    if port is None:
        port = randomport(host)
    prefix = _profile_prefix(profile) if host else ""
    if server not in DASK_SERVERS:
        return _serve_script(server, host, int(port), prefix)
    return _serve_dask(host, int(port), prefix, **kwds)


def _profile_prefix(profile: Optional[str]) -> str:
    if not profile:
        return ""
    path = profile if profile.startswith(("/", "~")) else f"$HOME/{profile}"
    return f"if [ -f {path} ]; then . {path}; fi; "


def _serve_script(server: str, host: Optional[str], port: int, prefix: str) -> Launcher:
    rserver = execute(f"{prefix}~/bin/{server}.py -p {port}", host, bg=True)
    response = rserver.response()
    if response:
        _log.error("invalid response = %r", response)
    return rserver


def _serve_dask(
    host: Optional[str],
    port: int,
    prefix: str,
    python: str = "python3",
    workers: int = 1,
    nthreads: int = 1,
    timeout: float = SERVE_SECONDS,
) -> Launcher:
    for name, value in (("workers", workers), ("nthreads", nthreads)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    command = (
        f"{prefix}exec {python} -m pathos._serve --port {port} --workers {int(workers)} "
        f"--nthreads {int(nthreads)} --timeout {float(timeout):g}"
    )
    # stdin is a pipe we hold open: the remote side stops when it closes (we exit, or
    # the ssh connection breaks), so no scheduler outlives this process.
    rserver = execute(command, host, bg=True, stdin=subprocess.PIPE)
    ready = b"pathos-serve: ready"
    rserver._read(lambda out: ready in out or b"pathos-serve: error" in out, timeout + 10.0)
    output = bytes(rserver._buffer)
    if ready not in output:
        rserver.kill()
        said = rserver._decode(output).strip() or "(no output)"
        where = host or "this machine"
        raise connection.PipeException(
            f"the Dask server on {where} did not start within {timeout:g} s; it said:\n{said}\n"
            f"({python!r} on {where} must import this pathos, {__version__}, and distributed: "
            "install them there from the same source as here, with the dask extra)"
        )
    _log.info("%s (on %s)", rserver._decode(output).strip(), host or "this machine")
    # As with 0.3.5's servers, response() is then empty while the server runs quietly.
    rserver._buffer = bytearray()
    return rserver
