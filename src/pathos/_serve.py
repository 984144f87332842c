"""``python -m pathos._serve``: a Dask scheduler and workers that live as long as stdin.

What :func:`pathos.core.serve` runs on the remote machine (over ssh)::

    ssh host 'python3 -m pathos._serve --port P --workers N'
        ├── dask scheduler --host 127.0.0.1 --port P     (output in a log file)
        └── dask worker tcp://127.0.0.1:P --nworkers N

It prints ``pathos-serve: ready port=P log=FILE`` once the workers have joined, then
waits. When its standard input ends (the ssh connection closed: the launcher was
killed, its Python exited, or the network broke), on SIGTERM/SIGHUP/SIGINT, or when the
scheduler exits, it stops the scheduler and the workers and exits. The scheduler
listens on 127.0.0.1 only: it is reached through an ssh tunnel, never from the network.
"""

from __future__ import annotations

import argparse
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional, Sequence

STOP_SECONDS = 3.0  # SIGTERM, then SIGKILL after this (within Pipe.kill()'s 5 s)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the server; returns the exit status."""
    args = _parser().parse_args(argv)
    port = args.port or _free_port(args.host)
    # per user: another user's log of the same port name must not stop us
    log_path = os.path.join(tempfile.gettempdir(), f"pathos-serve-{os.getuid()}-{port}.log")
    children: list[subprocess.Popen[bytes]] = []
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _exit_on_signal)
    try:
        with open(log_path, "ab") as log:
            address = f"tcp://{args.host}:{port}"
            children.append(_start(log, "dask_scheduler", "--host", args.host, "--port", str(port)))
            children.append(
                _start(
                    log,
                    "dask_worker",
                    address,
                    "--host",
                    args.host,
                    "--nworkers",
                    str(args.workers),
                    "--nthreads",
                    str(args.nthreads),
                    "--death-timeout",
                    "60",
                )
            )
            problem = _wait_ready(address, args.workers, args.timeout, children[0])
            if problem:
                _say(f"pathos-serve: error: {problem}\n{_tail(log_path)}")
                return 1
            _say(f"pathos-serve: ready port={port} log={log_path}")
            _watch(children[0])
    finally:
        _stop(children)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m pathos._serve", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, default=0, help="the scheduler's port (0: a free one)")
    parser.add_argument("--host", default="127.0.0.1", help="the address to listen on (default 127.0.0.1)")
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--nthreads", type=int, default=1, help="threads per worker")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the workers")
    return parser


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _say(line: str) -> None:
    try:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    except OSError:  # the ssh connection is gone
        pass


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _start(log: Any, cli: str, *args: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", f"distributed.cli.{cli}", *args, "--no-dashboard"]
    # A group of its own, so that stopping it stops the processes it starts too.
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


def _wait_ready(address: str, workers: int, timeout: float, scheduler: subprocess.Popen[bytes]) -> str:
    """'' once ``workers`` workers have joined the scheduler, else what went wrong."""
    deadline = time.monotonic() + timeout
    host, port = address[len("tcp://") :].rsplit(":", 1)
    while True:
        if scheduler.poll() is not None:
            return f"the scheduler exited with status {scheduler.returncode}"
        try:
            socket.create_connection((host, int(port)), timeout=1.0).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                return f"the scheduler did not listen on {address} within {timeout:g} s"
            time.sleep(0.1)
    import distributed

    try:
        with distributed.Client(  # type: ignore[no-untyped-call]
            address, timeout=max(1.0, deadline - time.monotonic()), set_as_default=False
        ) as c:
            c.wait_for_workers(workers, timeout=max(1.0, deadline - time.monotonic()))
    except Exception as exc:
        return f"the workers did not join within {timeout:g} s ({type(exc).__name__}: {exc})"
    return ""


def _watch(scheduler: subprocess.Popen[bytes]) -> None:
    """Return when stdin ends or the scheduler exits."""
    fd = sys.stdin.fileno()
    while scheduler.poll() is None:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready and not os.read(fd, 4096):
            return
    _say(f"pathos-serve: error: the scheduler exited with status {scheduler.returncode}")


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second signal must not cut the cleanup short
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    for child in reversed(children):
        _signal_group(child, signal.SIGTERM)
    deadline = time.monotonic() + STOP_SECONDS
    for child in reversed(children):
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        _signal_group(child, signal.SIGKILL)  # the group: workers the nannies started too
        child.wait()


def _signal_group(child: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(child.pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _tail(path: str, lines: int = 20) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


if __name__ == "__main__":
    raise SystemExit(main())
