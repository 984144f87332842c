"""The ``pathos`` command (also ``python -m pathos``).

::

    pathos info                          version, Python, cores, start methods, extras
    pathos map MODULE:FUNCTION [opts]    FUNCTION(line) for each line of stdin, in parallel
    pathos bench [-n N] [--quick]        serial, thread and process pools side by side
    pathos portpicker                    print a free TCP port

``pathos map`` prints one result per line, in input order (``--unordered``: as they
finish), streaming, so the input may be larger than memory. A failing line is reported
on stderr as ``line N: ErrorType: message`` and the others still print; the exit status
is the number of failed lines (at most 125), 2 for a bad command line, 141 when the
reader of stdout goes away early (``| head``).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import os
import platform
import sys
from typing import Any, Callable, Iterator, Sequence

__all__ = ["main"]

MAX_STATUS = 125
BROKEN_PIPE = 141  # what a shell reports for a command killed by SIGPIPE
EXTRAS = ("dill", "tqdm", "distributed", "numpy")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pathos`` command with ``argv`` (default ``sys.argv[1:]``); returns its exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.run(args, getattr(args, "command_parser", parser))
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pathos", description="Run Python functions in parallel.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="show versions, cores, start methods and extras").set_defaults(run=_info)
    _map_parser(sub)
    bench = sub.add_parser("bench", help="compare the serial, thread and process pools here")
    bench.add_argument("-n", "--nodes", type=_positive, default=None, help="workers (default: one per core)")
    bench.add_argument("--quick", action="store_true", help="a shorter run")
    bench.set_defaults(run=_bench)
    sub.add_parser("portpicker", help="print a free TCP port").set_defaults(run=_portpicker)
    return parser


def _map_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "map",
        help="apply MODULE:FUNCTION to each line of stdin",
        description="Apply FUNCTION to each line of stdin (without its newline) in parallel; "
        "print the results one per line. MODULE is imported from the current directory too.",
    )
    cmd.add_argument("spec", metavar="MODULE:FUNCTION", help="e.g. mymodule:parse or os.path:basename")
    cmd.add_argument("-n", "--nodes", type=_positive, default=None, help="workers (default: one per core)")
    cmd.add_argument("--pool", choices=("process", "thread", "serial", "parallel"), default="process")
    cmd.add_argument("--servers", action="append", metavar="ADDR", help="a Dask scheduler (--pool parallel)")
    cmd.add_argument("--unordered", action="store_true", help="print results as they finish")
    cmd.add_argument("--progress", action="store_true", help="show a progress bar on stderr")
    cmd.add_argument("--chunksize", type=_positive, default=None, help="lines per task (default: adaptive)")
    cmd.set_defaults(run=_map, command_parser=cmd)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return value


# -- info ---------------------------------------------------------------------------------
def _version(name: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _info(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import multiprocessing

    from . import __version__
    from ._config import cpu_count, default_context

    print(f"pathos {__version__} ({os.path.dirname(os.path.abspath(__file__))})")
    print(f"python {platform.python_version()} ({platform.python_implementation()}) {sys.executable}")
    print(f"platform {platform.platform()}")
    print(f"cores {cpu_count()} usable, {os.cpu_count()} in the machine")
    methods = ", ".join(multiprocessing.get_all_start_methods())
    print(f"start methods {methods} (default: {default_context()})")
    for name in EXTRAS:
        print(f"{name} {_version(name)}")
    return 0


# -- map ----------------------------------------------------------------------------------
class _Line:
    """Calls the user's function on one numbered line; never raises, so one bad line
    does not stop the others. Returns ``(line number, ok, text)``."""

    def __init__(self, fn: Callable[[str], Any]) -> None:
        self.fn = fn

    def __call__(self, number: int, line: str) -> tuple[int, bool, str]:
        try:
            return number, True, str(self.fn(line))
        except Exception as exc:
            return number, False, f"{type(exc).__name__}: {exc}"


def load_function(spec: str) -> Callable[..., Any]:
    """The function named by ``MODULE:FUNCTION`` (FUNCTION may be dotted: ``Class.method``).

    Raises:
        ValueError: a malformed spec, a module that will not import, or no such callable.
    """
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr or ":" in attr:
        raise ValueError(f"expected MODULE:FUNCTION (e.g. mymodule:parse), got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except Exception as exc:
        raise ValueError(f"cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from None
    for part in attr.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ValueError(f"module {module_name!r} has no {attr!r}") from None
    if not callable(target):
        raise ValueError(f"{spec!r} is not callable (it is a {type(target).__name__})")
    return target  # type: ignore[no-any-return]


def _make_pool(args: argparse.Namespace) -> Any:
    from .pools import ParallelPool, ProcessPool, SerialPool, ThreadPool

    options: dict[str, Any] = {"id": "pathos-cli"}
    if args.pool == "serial":
        return SerialPool()
    if args.pool == "parallel":
        return ParallelPool(args.nodes, servers=tuple(args.servers or ()), **options)
    cls = ProcessPool if args.pool == "process" else ThreadPool
    return cls(args.nodes, **options)


def _lines() -> Iterator[str]:
    for line in sys.stdin:
        yield line[:-1] if line.endswith("\n") else line


def _map(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    try:
        fn = load_function(args.spec)
    except ValueError as exc:
        parser.error(str(exc))
    if args.servers and args.pool != "parallel":
        parser.error("--servers needs --pool parallel")
    pool = _make_pool(args)
    verb = pool.uimap if args.unordered else pool.imap
    with pool:
        results = verb(
            _Line(fn), itertools.count(1), _lines(), chunksize=args.chunksize, progress=args.progress or None
        )
        try:
            failed = _print_results(results, ordered=not args.unordered)
        except BrokenPipeError:  # the reader went away (| head): stop quietly
            results.close()
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return BROKEN_PIPE
    return min(failed, MAX_STATUS)


def _print_results(results: Iterator[tuple[int, bool, str]], *, ordered: bool) -> int:
    """Print each result, report each failure; returns the number of failed lines."""
    failed = done = 0
    write, report = sys.stdout.write, sys.stderr.write
    while True:
        try:
            number, ok, text = next(results)
        except StopIteration:
            return failed
        except Exception as exc:  # the engine lost the line (a crashed worker, ...)
            number, ok, text = (done + 1 if ordered else 0), False, f"{type(exc).__name__}: {exc}"
        done += 1
        if ok:
            write(text + "\n")
        else:
            failed += 1
            report(f"line {number or '?'}: {text}\n")


# -- bench, portpicker -------------------------------------------------------------------
def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ._bench import Sizes, run_bench
    from ._config import cpu_count

    run_bench(args.nodes or cpu_count(), Sizes.quick() if args.quick else Sizes())
    return 0


def _portpicker(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from .portpicker import main as pick

    pick()
    return 0
