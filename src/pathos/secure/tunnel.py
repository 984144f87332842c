"""``Tunnel``: forward a local port to a port on another machine with ``ssh -N -L``.

::

    this machine                         remote host
    127.0.0.1:<local port>  -- ssh -->   localhost:<remote port>

The local end listens on 127.0.0.1 only (never on the network).

``connect()`` returns only once ssh listens on the local port, and raises
:class:`TunnelException` with ssh's own message if ssh exits instead (a wrong host, a
refused key, ...). A local port that another program takes first is skipped for the
next one. Tunnels still open when Python exits are closed; on Linux a tunnel opened from
the main thread also ends if Python is killed.
"""

from __future__ import annotations

import atexit
import os
import random
import signal
import socket
import string
import sys
import threading
import time
from typing import Any, Callable, Optional

from .. import _registry
from .._errors import PathosError
from ..portpicker import portnumber
from .connection import Pipe

__all__ = ["Tunnel", "TunnelException"]

CONNECT_SECONDS = 30.0  # bound on ssh logging in and listening on the local port
ATTEMPTS = 10  # local ports tried when other programs take the ones picked
POLL_SECONDS = 0.05
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>

_open: set[Pipe] = set()  # the ssh launchers of connected tunnels, closed at exit


@atexit.register
def _close_open_tunnels() -> None:
    # Pools may still talk through a tunnel: stop them first (atexit runs this hook
    # before the pools' own, which was registered earlier).
    _registry.shutdown_all()
    for launcher in list(_open):
        launcher.kill()
    _open.clear()


class TunnelException(PathosError):
    """An ssh tunnel could not be opened."""


class Tunnel:
    """An ssh tunnel from a local port to a port on a remote host.

    Args:
        name: an identifier (default: 16 random letters).
        host, port, through: if given, ``connect()`` at once with them.

    Attributes:
        connected: True while the ssh process that carries the tunnel runs.
    """

    MINPORT = 1024
    MAXPORT = 65535
    verbose = False

    def __init__(self, name: Optional[str] = None, **kwds: Any) -> None:
        self.name = "".join(random.choice(string.ascii_letters) for _ in range(16)) if name is None else name
        self._launcher = Pipe("launcher")
        self.__disconnect()
        if kwds:
            self.connect(**kwds)

    def __repr__(self) -> str:
        if not self.connected:
            return f"Tunnel('{self.name}')"
        return f"Tunnel('{self._launcher.message.split('ssh ', 1)[-1]}')"

    @property
    def connected(self) -> bool:
        """True while the ssh process that carries the tunnel runs."""
        process = self._launcher._process
        return self._pid > 0 and process is not None and process.poll() is None

    def connect(self, host: str, port: Optional[int] = None, through: Optional[str] = None) -> int:
        """Open the tunnel to ``port`` on ``host``; returns the local port.

        A tunnel that is already open is closed first (one ssh per ``Tunnel``).

        Args:
            host: the remote machine (``user@host`` or an ssh alias works).
            port: the port on ``host`` (default: a free one there).
            through: reach ``host:port`` through this ssh host instead (a gateway):
                ssh logs in to ``through``, which connects to ``host:port``.

        Raises:
            TunnelException: ssh exited (its message is in the exception), or did not
                listen within 30 s.
        """
        if self.connected:
            self.disconnect()
        if port is None:
            from ..core import randomport

            port = randomport(through or host)
        pick = portnumber(self.MINPORT, self.MAXPORT)
        for _ in range(ATTEMPTS):
            localport = pick()
            try:
                self._connect(localport, host, int(port), through=through)
            except TunnelException as exc:
                self.disconnect()
                if exc.args[0] == "bind":
                    continue  # another program took the port first: try the next one
                detail = exc.args[1] if len(exc.args) > 1 else exc.args[0]
                raise TunnelException(f"Connection failed: ssh tunnel to {host}:{port}: {detail}") from None
            _open.add(self._launcher)
            return localport
        raise TunnelException(f"Connection failed: {ATTEMPTS} local ports in a row were taken by other programs")

    def disconnect(self) -> None:
        """Close the tunnel (stop its ssh process)."""
        if self._launcher._process is not None:
            if self.verbose and self.connected:
                print(f"Kill ssh pid={self._pid}")
            self._launcher.kill()
        _open.discard(self._launcher)
        self.__disconnect()

    def __disconnect(self) -> None:
        self._pid = 0
        self._lport: Optional[int] = None
        self._rport: Optional[int] = None
        self._host: Optional[str] = None

    def _connect(self, localport: int, remotehost: str, remoteport: int, through: Optional[str] = None) -> None:
        """Start ssh and wait until it listens on ``localport``.

        Raises ``TunnelException('bind')`` if the port was taken, else
        ``TunnelException('failure', what ssh said)``.
        """
        # Without a gateway the remote end is the host's own loopback, so a service that
        # listens on 127.0.0.1 only (as pathos.core.serve's Dask scheduler does) is reached.
        target = remotehost.rpartition("@")[2] if through else "localhost"
        options = f"-N -o ExitOnForwardFailure=yes -o LogLevel=ERROR -L 127.0.0.1:{localport}:{target}:{remoteport}"
        self._launcher(host=through or remotehost, command="", options=options, background=True)
        # exec: the shell becomes ssh, so the pid is ssh's and a signal reaches it.
        self._launcher.message = "exec " + self._launcher.message
        self._launcher._preexec = _dies_with_this_thread()
        self._launcher.launch()
        self._lport, self._rport, self._host = localport, remoteport, through or remotehost
        self._pid = self._launcher.pid()
        self._wait_listening(localport)

    def _wait_listening(self, localport: int) -> None:
        launcher = self._launcher
        process = launcher._process
        assert process is not None
        deadline = time.monotonic() + CONNECT_SECONDS
        while time.monotonic() < deadline:
            launcher._read(None, POLL_SECONDS)  # keep ssh's output from filling the pipe
            if process.poll() is not None:
                launcher._read(None, 1.0)
                said = launcher._decode(bytes(launcher._buffer)).strip()
                if "bind" in said.lower() or "address already in use" in said.lower():
                    raise TunnelException("bind")
                raise TunnelException("failure", said or f"ssh exited with status {process.returncode}")
            if _listening(process.pid, localport):
                _drain(process)
                return
        raise TunnelException("failure", f"ssh did not listen on local port {localport} within {CONNECT_SECONDS:g} s")


def _drain(process: Any) -> None:
    """Read and drop what ssh prints from now on, so that a long-lived tunnel never
    blocks on a full pipe (ssh reports each forwarded connection that fails)."""

    def run() -> None:
        try:
            while process.stdout.read(65536):
                pass
        except (OSError, ValueError):  # closed under us
            pass

    threading.Thread(target=run, name="pathos-tunnel-output", daemon=True).start()


def _dies_with_this_thread() -> Optional[Callable[[], None]]:
    """On Linux, called from the main thread: a preexec function that makes the kernel
    send SIGTERM to ssh when this process dies, even by SIGKILL, so no tunnel outlives it.

    The kernel signals when the thread that started the child ends, so a tunnel opened
    from another thread (which may end first) goes without; atexit still closes it.
    """
    if threading.current_thread() is not threading.main_thread() or not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return preexec


def _listening(pid: int, port: int) -> bool:
    """True if process ``pid`` (or a child of it) listens on TCP ``port``.

    On Linux this reads /proc, so nothing connects to the tunnel to find out; elsewhere
    it tries a connection to the port.
    """
    inodes = _listen_inodes(port)
    if inodes is None:
        return _accepts(port)
    if not inodes:
        return False
    for owner in [pid, *_children(pid)]:
        try:
            links = [os.readlink(f"/proc/{owner}/fd/{fd}") for fd in os.listdir(f"/proc/{owner}/fd")]
        except OSError:
            continue
        if any(link[8:-1] in inodes for link in links if link.startswith("socket:[")):
            return True
    return False


def _listen_inodes(port: int) -> Optional[set[str]]:
    """Socket inodes listening on ``port`` (from /proc/net/tcp*), or None without /proc."""
    found: set[str] = set()
    seen = False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        seen = True
        for line in lines:
            fields = line.split()
            if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                found.add(fields[9])
    return found if seen else None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except OSError:
        return []


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False
