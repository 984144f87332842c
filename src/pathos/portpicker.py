"""Find free TCP ports on this machine (pathos 0.3.5's ``pathos.portpicker``).

    >>> from pathos.portpicker import portnumber, randomport
    >>> next_port = portnumber(20000, 21000)
    >>> a, b = next_port(), next_port()    # a random free port, then the next free one
    >>> port = randomport()                # one free port in 1024..65535 (inclusive)

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
from typing import Sequence

__all__ = ["is_free", "main", "portnumber", "randomport"]


def is_free(port: int) -> bool:
    """True if a TCP socket can be bound to ``port`` on every interface right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("", port))
        except OSError:
            return False
    return True


class portnumber:
    """A callable that returns a free port in ``[min, max]`` (both included) each call.

    The first call starts at a random port of the range; later calls go on from there
    in order, wrapping around at the end, so each port is offered at most once. Ports
    that cannot be bound now are passed over (pathos 0.3.5 offered them anyway).

    Args:
        min: the lowest port (port 0, which means "any" to the OS, is skipped).
        max: the highest port (at most 65535).

    Raises:
        ValueError: the range holds no usable port.
        RuntimeError: ``'Range exhausted'``, from a call after every port was tried.
    """

    def __init__(self, min: int = 0, max: int = 64 * 1024) -> None:  # min, max: pathos's names
        self.min = min
        self.max = max
        self.first = -1  # the first port offered, as in pathos
        self.current = -1  # the last port tried
        self._low, self._high = builtins.max(min, 1), builtins.min(max, 65535)
        if self._low > self._high:
            raise ValueError(f"the port range [{min}, {max}] holds no usable port")
        self._tried = 0

    def __call__(self) -> int:
        """The next free port of the range."""
        size = self._high - self._low + 1
        while self._tried < size:
            if self.current < 0:
                port = random.randint(self._low, self._high)
                self.first = port
            else:
                port = self._low + (self.current + 1 - self._low) % size
            self.current = port
            self._tried += 1
            if is_free(port):
                return port
        raise RuntimeError("Range exhausted")


def randomport(min: int = 1024, max: int = 65536) -> int:
    """A free port in ``[min, max]`` (both included), picked at random.

    Raises:
        RuntimeError: no port of the range is free.
    """
    return portnumber(min, max)()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the ``portpicker`` command (shared with ``pathos portpicker``)."""
    parser.add_argument("--min", type=int, default=1024, metavar="PORT", help="lowest port (default 1024)")
    parser.add_argument("--max", type=int, default=65535, metavar="PORT", help="highest port, included (default 65535)")


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
    """Print a free port in ``[args.min, args.max]``; returns the exit status."""
    try:
        port = randomport(args.min, args.max)
    except (ValueError, RuntimeError) as exc:
        cmd.error(f"no free port in [{args.min}, {args.max}]: {exc}")
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
