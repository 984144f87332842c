"""The ``pathos_connect`` command: a Dask server on a machine you can ssh to, and a tunnel to it.

::

    pathos_connect HOST dask            # a Dask scheduler + worker on HOST, tunnelled here
    pathos_connect HOST tunnel PORT     # only a tunnel: localhost:<local port> -> HOST:PORT
    pathos_connect HOST dask 8786 .profile --workers 4

It prints where to connect (``ParallelPool(nodes=0, servers=("localhost:NNNN",))``),
then waits for Enter (or the end of its input, or SIGTERM/SIGINT) and stops the server
and the tunnel. pathos 0.3.5's ``ppserver`` starts Dask too.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import Any, Optional, Sequence

__all__ = ["main"]


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``pathos_connect`` with ``argv`` (default ``sys.argv[1:]``); returns its exit status."""
    args = _parser().parse_args(argv)
    if args.remoteport not in (None, "tunnel") and not args.remoteport.isdigit():
        print(f"pathos_connect: remoteport must be a port number or 'tunnel', got {args.remoteport!r}", file=sys.stderr)
        return 2
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pathos_connect",
        description="Start a Dask server on HOST over ssh and/or open an ssh tunnel to it; Enter stops both.",
        epilog="ssh options for every connection: the PATHOS_SSH_OPTIONS environment variable "
        '(e.g. "-o Port=2222 -i ~/.ssh/key"), or ~/.ssh/config.',
    )
    parser.add_argument("hostname", nargs="?", default="localhost", help="the machine (user@host works)")
    parser.add_argument(
        "server",
        nargs="?",
        default="tunnel",
        help="'dask' (also 'ppserver'), 'tunnel' for a tunnel only, or a script in ~/bin",
    )
    parser.add_argument(
        "remoteport",
        nargs="?",
        default=None,
        help="the port on HOST (default: a free one); 'tunnel' is accepted as in pathos 0.3.5",
    )
    parser.add_argument("profile", nargs="?", default=None, help="a shell profile to read on HOST first")
    parser.add_argument("--workers", type=int, default=1, help="Dask worker processes (default 1)")
    parser.add_argument("--nthreads", type=int, default=1, help="threads per worker (default 1)")
    parser.add_argument("--python", default="python3", help="the Python on HOST with pathos[dask] (default python3)")
    return parser


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


def _run(args: argparse.Namespace) -> int:
    from . import core, hosts

    host: str = args.hostname
    if args.profile:
        hosts.register(host, args.profile)
    port = int(args.remoteport) if args.remoteport not in (None, "tunnel") else core.randomport(host)
    server = None
    tunnel = None
    try:
        if args.server != "tunnel":
            server = core.serve(
                args.server,
                host,
                port,
                profile=hosts.get_profile(host),
                python=args.python,
                workers=args.workers,
                nthreads=args.nthreads,
            )
            print(f"Server running at port={port} on {host}", flush=True)
        tunnel = core.connect(host, port)
        print(f"Connected to localhost at port={tunnel._lport}", flush=True)
        if server is not None and args.server in core.DASK_SERVERS:
            print(f'Use it with: ParallelPool(nodes=0, servers=("localhost:{tunnel._lport}",))', flush=True)
        print("Press <Enter> to " + ("kill server" if server is not None else "disconnect"), flush=True)
        sys.stdin.readline()
    finally:
        if tunnel is not None:
            tunnel.disconnect()
        if server is not None:
            _stop(server, args.server, host)
    return 0


def _stop(server: Any, name: str, host: str) -> None:
    """Stop the server: Dask's stops with its ssh connection; a ~/bin script is killed by name."""
    from . import core

    server.kill()
    if name not in core.DASK_SERVERS:
        try:
            core.kill(core.getpid(f"{name}[.]py", host), host)
        except OSError:
            print(f"pathos_connect: {name}.py was not found running on {host}; it may need stopping by hand")


if __name__ == "__main__":
    raise SystemExit(main())
