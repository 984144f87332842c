"""Finding a Dask cluster for :class:`~pathos.pools.ParallelPool`: a scheduler given by
address, checked to really be one, or a local cluster started here; and describing it.

A Dask client trusts whatever answers at an address: an SSH server's greeting read as a
Dask frame length asks numpy for exabytes (``MemoryError``), and a server that waits for
the client to speak first (HTTP) holds the client's handshake for a minute or more,
whatever its ``timeout=`` says. So before a client connects, :func:`probe` checks, within
the stated time, that the address greets like a Dask scheduler: a Dask server writes its
handshake first, an 8-byte frame length and a small frame.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import struct
import sys
import time
import warnings
from typing import Any

from .._errors import ClusterError

__all__ = [
    "CONNECT_SECONDS",
    "DASK_REQUIREMENT",
    "INSTALL_HINT",
    "RPC_SECONDS",
    "NotDaskError",
    "close_quietly",
    "connect",
    "import_distributed",
    "probe",
    "report",
    "scheduler_address",
    "workers_of",
]

CONNECT_SECONDS = 3.0  # a scheduler that does not answer within this is unreachable
RPC_SECONDS = 10.0  # bound on closing a client or a local cluster
DASK_REQUIREMENT = "distributed>=2023.1"  # pyproject's dask extra (a test keeps them equal)
# Installs into this interpreter's environment; the registry's "pathos[dask]" is pathos 0.3.5.
INSTALL_HINT = (
    "ParallelPool runs on Dask distributed, which is not installed: "
    f'{sys.executable} -m pip install "{DASK_REQUIREMENT}"'
)
_HEADER = struct.Struct("Q")  # Dask's TCP frame: the message's byte length, native order
_MAX_GREETING = 1 << 20  # a Dask handshake is about a hundred bytes
_SHOWN = 60  # characters of a foreign greeting quoted in the error


class NotDaskError(Exception):
    """Something answers at the address, but it is not a Dask scheduler."""


def close_quietly(*things: Any) -> None:
    """Close a client and a local cluster (None skipped), each bounded in time."""
    for thing in things:
        if thing is None:
            continue
        try:
            thing.close(timeout=RPC_SECONDS)
        except Exception:  # already closed (e.g. by distributed's own exit hook)
            pass


def import_distributed() -> Any:
    """The ``distributed`` module, or an ``ImportError`` that says how to install it."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return distributed


def scheduler_address(server: str) -> str:
    """A Dask address from ``"tcp://host:port"``, pathos's ``"host:port"`` or ``"host"``."""
    if "://" in server:
        return server
    host, sep, port = server.rpartition(":")
    if not sep:
        host, port = server, "8786"
    return f"tcp://{host}:{port}"


def connect(servers: tuple[str, ...], nodes: int, *, strict: bool) -> tuple[Any, Any]:
    """``(client, local cluster or None)``: a client of the first server that answers as
    a Dask scheduler, else of a local cluster of ``nodes`` workers started here.

    Raises:
        ClusterError: ``strict`` and a server failed, or nothing to run on.
    """
    distributed = import_distributed()
    reasons: list[str] = []
    for i, server in enumerate(servers):
        address = scheduler_address(server)
        try:
            return _client(distributed, address), None
        except ClusterError as exc:
            if strict:
                raise ClusterError(f"{exc}; strict=True, so the call fails", address=address) from exc
            reasons.append(str(exc))
            last = i == len(servers) - 1
            then = "trying the next server" if not last else "running on a local cluster instead"
            if last and nodes == 0:
                then = "and no other server is left"
            warnings.warn(f"ParallelPool: {exc}; {then}", RuntimeWarning, stacklevel=_caller_level())
    if nodes == 0:
        raise _nowhere_error(servers, reasons)
    local = _start_local_cluster(distributed, nodes)
    return distributed.Client(local, set_as_default=False, timeout=CONNECT_SECONDS), local


def _caller_level() -> int:
    """The ``stacklevel`` of the first frame outside pathos, seen from our caller: a
    warning names the user's line, whichever verb led here."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame = sys._getframe(1)
    level = 1
    while frame.f_back is not None and frame.f_code.co_filename.startswith(package):
        frame = frame.f_back
        level += 1
    return level


def _client(distributed: Any, address: str) -> Any:
    """A client connected to ``address``, checked first to be a Dask scheduler."""
    try:
        probe(address, CONNECT_SECONDS)
    except NotDaskError as exc:
        raise ClusterError(f"{address} is not a Dask scheduler: {exc}", address=address) from None
    except ValueError as exc:  # a malformed address
        raise ClusterError(f"{address} is not a scheduler address ({exc})", address=address) from exc
    except OSError as exc:  # refused, unreachable, or no answer in time (TimeoutError)
        message = f"cannot reach the Dask scheduler at {address} within {CONNECT_SECONDS:g} s ({exc})"
        raise ClusterError(message, address=address) from exc
    try:
        return distributed.Client(address, timeout=CONNECT_SECONDS, set_as_default=False)
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:  # distinct on Python < 3.11
        message = f"cannot reach the Dask scheduler at {address} within {CONNECT_SECONDS:g} s ({exc})"
        raise ClusterError(message, address=address) from exc
    except Exception as exc:  # it greeted like Dask, then broke the protocol
        message = f"{address} is not a Dask scheduler, or not one this client can talk to ({type(exc).__name__}: {exc})"
        raise ClusterError(message, address=address) from exc


def probe(address: str, timeout: float) -> None:
    """Check, within ``timeout`` seconds, that a Dask scheduler answers at ``address``.

    Only ``tcp://`` addresses are checked (other transports begin with their own
    handshakes). The scheduler's greeting is sent back, so it sees a complete handshake
    from a client that then leaves, and logs nothing.

    Raises:
        OSError: nothing accepts connections there in time (``TimeoutError`` included).
        NotDaskError: something else answers: what it said, and what to check.
    """
    from distributed.comm.addressing import parse_address, parse_host_port

    scheme, location = parse_address(address)
    if scheme != "tcp":
        return
    host, port = parse_host_port(location)
    deadline = time.monotonic() + timeout
    with socket.create_connection((host, port), timeout=timeout) as sock:
        header = _receive(sock, _HEADER.size, deadline, timeout)
        (size,) = _HEADER.unpack(header)
        if not 0 < size <= _MAX_GREETING:
            raise NotDaskError(_foreign(header + _more(sock)))
        body = _receive(sock, size, deadline, timeout)
        sock.sendall(header + body)


def _receive(sock: socket.socket, size: int, deadline: float, timeout: float) -> bytes:
    data = b""
    while len(data) < size:
        sock.settimeout(max(0.001, deadline - time.monotonic()))
        try:
            chunk = sock.recv(size - len(data))
        except socket.timeout:  # TimeoutError from 3.10 on; on 3.9 an OSError apart from it
            if data:
                raise NotDaskError(_foreign(data)) from None
            raise NotDaskError(
                f"it accepted the connection but sent no Dask greeting within {timeout:g} s (a server that "
                "waits for the client to speak first, such as an HTTP server); check the host and the port "
                "(a Dask scheduler listens on 8786 unless told otherwise)"
            ) from None
        if not chunk:
            said = f"after sending {data!r}" if data else "without a word"
            raise NotDaskError(f"it closed the connection {said}; check the host and the port")
        data += chunk
    return data


def _more(sock: socket.socket) -> bytes:
    """A little more of a foreign greeting, if it comes at once, to name the service."""
    sock.settimeout(0.05)
    try:
        return sock.recv(_SHOWN)
    except OSError:
        return b""


def _foreign(greeting: bytes) -> str:
    text = greeting.decode("ascii", "replace").strip()[:_SHOWN]
    what = ""
    if text.startswith("SSH-"):
        what = " (an SSH server)"
    elif text.startswith("HTTP/"):
        what = " (an HTTP server)"
    return (
        f"it greeted with {text!r}{what}; check the host and the port "
        "(a Dask scheduler listens on 8786 unless told otherwise)"
    )


def _nowhere_error(servers: tuple[str, ...], reasons: list[str]) -> ClusterError:
    if servers:
        return ClusterError(
            f"no Dask scheduler could be reached ({'; '.join(reasons)}) and nodes=0 allows no local cluster; "
            "start one with `dask scheduler` and `dask worker`, or pass nodes=N"
        )
    return ClusterError("ParallelPool(nodes=0) without servers= has nowhere to run; pass servers= or nodes=N")


def _subprocess_worker_class() -> Any:
    """distributed's SubprocessWorker, made to start its process with this interpreter.

    distributed up to 2024.8 (the last release for Python 3.9) starts each worker as the
    bare command ``dask spec ...``, found on PATH: from a virtual environment that is not
    activated (``.venv/bin/python script.py``) there is no ``dask`` on PATH, or another
    environment's. Later releases run ``sys.executable -m dask spec ...``, which is what
    this subclass does on every version, so old and new distributed start the same
    program.
    """
    import json

    from distributed.deploy.subprocess import SubprocessWorker

    class _Worker(SubprocessWorker):
        async def _start(self) -> None:
            spec = json.dumps({"cls": self.worker_class, "opts": {**self.worker_kwargs}})
            cmd = [sys.executable, "-m", "dask", "spec", self.scheduler, "--spec", spec]
            self.process = await asyncio.create_subprocess_exec(*cmd)

    return _Worker


def _start_local_cluster(distributed: Any, nodes: int) -> Any:
    """A scheduler in this process and ``nodes`` single-threaded worker processes."""
    quiet = logging.ERROR
    worker_kwargs = {"nthreads": 1, "host": "127.0.0.1", "silence_logs": quiet, "death_timeout": 30}
    worker = {
        "cls": _subprocess_worker_class(),
        "options": {"worker_class": "distributed.Nanny", "worker_kwargs": worker_kwargs},
    }
    scheduler = {
        "cls": distributed.Scheduler,
        "options": {"host": "127.0.0.1", "port": 0, "dashboard": False, "dashboard_address": "127.0.0.1:0"},
    }
    return distributed.SpecCluster(
        workers=dict.fromkeys(range(nodes), worker),
        scheduler=scheduler,
        worker=worker,
        silence_logs=quiet,
        name="pathos",
    )


def workers_of(client: Any) -> dict[str, dict[str, Any]]:
    """Each worker of the client's cluster: its threads, memory limit and name ({} if
    the scheduler does not answer)."""
    try:
        identity = client.scheduler_info(n_workers=-1)
    except Exception:
        return {}
    workers = identity.get("workers", {})
    return {
        address: {"nthreads": w.get("nthreads"), "memory_limit": w.get("memory_limit"), "name": w.get("name")}
        for address, w in workers.items()
    }


def report(info: dict[str, Any]) -> str:
    """The text ``pathos.parallel.stats()`` shows for a pool described by ``info``."""
    if info["scheduler"] is None:
        return ""
    kind = "local cluster" if info["local"] else "cluster"
    workers = info["workers"]
    lines = [f"Dask {kind} at {info['scheduler']}: {len(workers)} workers, state {info['state']}"]
    for address, w in sorted(workers.items()):
        memory = f"{w['memory_limit'] / 2**30:.1f} GiB" if w["memory_limit"] else "no limit"
        lines.append(f"  worker {address}  threads {w['nthreads']}  memory {memory}")
    lines.append(
        f"  tasks run: {info['tasks']}, items run: {info['items']}, "
        f"crashes: {info['crashes']}, timeouts: {info['timeouts']}"
    )
    return "\n".join(lines) + "\n"
