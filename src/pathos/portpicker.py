"""Find free TCP ports on this machine (pathos 0.3.5's ``pathos.portpicker``).

    >>> from pathos.portpicker import portnumber, randomport
    >>> next_port = portnumber(20000, 21000)
    >>> a, b = next_port(), next_port()    # a random free port, then the next free one
    >>> port = randomport()                # one free port in 1024..65535

From a shell: ``portpicker`` (also ``pathos portpicker`` and ``python -m
pathos.portpicker``) prints a free port; ``--min``/``--max`` bound it, ``--help`` says so.
A port is free if a socket can be bound to it now; another program may take it before
you do, so bind it soon.
"""

from __future__ import annotations

import argparse
import builtins
import os
import random
import socket
import sys
from typing import Callable, Sequence

__all__ = ["is_free", "main", "portnumber", "randomport"]


def is_free(port: int) -> bool:
    """True if a TCP socket can be bound to ``port`` on every interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


def portnumber(min: int = 0, max: int = 64 * 1024) -> Callable[[], int]:
    """A function that returns a free port in ``[min, max)`` each time it is called.

    The first call starts at a random port of the range; later calls go on from there
    in order, wrapping around at the end, so each port is offered at most once.

    Args:
        min: the lowest port (port 0, which means "any" to the OS, is skipped).
        max: one past the highest port.

    Returns:
        A callable that raises ``RuntimeError('Range exhausted')`` once every port of
        the range has been tried.
    """
    low, high = builtins.max(min, 1), builtins.min(max, 65536)  # min, max: pathos's names
    if low >= high:
        raise ValueError(f"the port range [{min}, {max}) holds no usable port")
    size = high - low
    state = {"start": random.randrange(size), "tried": 0}

    def next_port() -> int:
        while state["tried"] < size:
            port = low + (state["start"] + state["tried"]) % size
            state["tried"] += 1
            if is_free(port):
                return port
        raise RuntimeError("Range exhausted")

    return next_port


def randomport(min: int = 1024, max: int = 65536) -> int:
    """A free port in ``[min, max)``, picked at random.

    Raises:
        RuntimeError: no port of the range is free.
    """
    return portnumber(min, max)()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ``portpicker`` command (shared with ``pathos portpicker``)."""
    parser.add_argument("--min", type=int, default=1024, metavar="PORT", help="lowest port (default 1024)")
    parser.add_argument("--max", type=int, default=65536, metavar="PORT", help="one past the highest (default 65536)")


def parser() -> argparse.ArgumentParser:
    """The ``portpicker`` command line."""
    cmd = argparse.ArgumentParser(
        prog="portpicker",
        description="Print a TCP port that is free on this machine right now, picked at random "
        "(another program may take it before you do: bind it soon).",
    )
    add_arguments(cmd)
    return cmd


def pick(args: argparse.Namespace, cmd: argparse.ArgumentParser) -> int:
    """Print a free port in ``[args.min, args.max)``; returns the exit status."""
    try:
        port = randomport(args.min, args.max)
    except (ValueError, RuntimeError) as exc:
        cmd.error(f"no free port in [{args.min}, {args.max}): {exc}")
    try:
        print(port, flush=True)
    except BrokenPipeError:  # the reader went away: quietly, as a shell command would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The ``portpicker`` command: print a free port; ``-h`` for its options."""
    cmd = parser()
    return pick(cmd.parse_args(argv), cmd)


if __name__ == "__main__":
    raise SystemExit(main())
