"""The ``pathos`` command (also ``python -m pathos``).

::

    pathos info                          version, Python, cores, start methods, extras
    pathos map MODULE:FUNCTION [opts]    FUNCTION(line) for each line of stdin, in parallel
    pathos bench [-n N] [--rounds R]     serial, thread and process pools side by side
    pathos portpicker                    print a free TCP port

``pathos map`` prints one result per line, in input order (``--unordered``: as they
finish), streaming, so the input may be larger than memory. Each line is passed as a
string, or converted first (``--type int|float``, or ``--json``: JSON Lines in and out).
A failing line is reported on stderr as ``line N: ErrorType: message`` and the others
still print; the exit status is the number of failed lines (at most 125), 2 for a bad
command line, 141 when the reader of stdout goes away early (``| head``).
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import os
import platform
import sys
from typing import Any, Callable, Iterator, Sequence

from . import portpicker

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
    try:
        status: int = args.run(args, getattr(args, "command_parser", parser))
        sys.stdout.flush()  # here, so that a closed pipe is caught below, not at exit
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        _silence_stdout()
        return BROKEN_PIPE
    return status


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so the interpreter's last flush does not fail again."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pathos", description="Run Python functions in parallel.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("info", help="show versions, cores, start methods and extras").set_defaults(run=_info)
    _map_parser(sub)
    _bench_parser(sub)
    picker = sub.add_parser("portpicker", help="print a free TCP port", description=portpicker.parser().description)
    portpicker.add_arguments(picker)
    picker.set_defaults(run=portpicker.pick, command_parser=picker)
    return parser


def _bench_parser(sub: Any) -> None:
    from ._bench import DEFAULT_ROUNDS

    cmd = sub.add_parser(
        "bench",
        help="compare the serial, thread and process pools here",
        description="Time the serial, thread and process pools on the same small workloads, "
        "in interleaved rounds; print each figure's median and its spread (min-max over rounds) "
        "and the machine's load. On a busy machine the figures are noisy: compare pools with "
        "each other, and rerun when the load is low.",
    )
    cmd.add_argument("-n", "--nodes", type=_positive, default=None, help="workers (default: one per core)")
    cmd.add_argument(
        "--rounds", type=_positive, default=DEFAULT_ROUNDS, help=f"rounds per figure (default {DEFAULT_ROUNDS})"
    )
    cmd.add_argument("--quick", action="store_true", help="smaller workloads (a few seconds in all)")
    cmd.set_defaults(run=_bench)


def _map_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "map",
        help="apply MODULE:FUNCTION to each line of stdin",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Apply FUNCTION to each line of stdin (without its newline) in parallel;\n"
        "print the results one per line, in input order. MODULE is imported from the\n"
        "current directory too. Lines are passed as strings unless --type or --json\n"
        "says otherwise.",
        epilog="examples:\n"
        "  seq 1 5 | pathos map --type float math:sqrt\n"
        "  pathos map --json mymodule:handle < in.jsonl > out.jsonl\n"
        "  pathos map mymodule:parse -n 4 --progress < urls.txt > parsed.txt\n\n"
        "exit status: the number of failed lines (at most 125); 2 for a bad command line",
    )
    cmd.add_argument("spec", metavar="MODULE:FUNCTION", help="e.g. mymodule:parse or os.path:basename")
    cmd.add_argument("-n", "--nodes", type=_positive, default=None, help="workers (default: one per core)")
    cmd.add_argument(
        "--pool", choices=("process", "thread", "serial", "parallel"), default="process", help="default: process"
    )
    cmd.add_argument("--servers", action="append", metavar="ADDR", help="a Dask scheduler (--pool parallel)")
    cmd.add_argument("--unordered", action="store_true", help="print results as they finish")
    kind = cmd.add_mutually_exclusive_group()
    kind.add_argument(
        "--type",
        choices=tuple(_CONVERT),
        default="str",
        help="convert each line to this type before the call (default str: the line as it is)",
    )
    kind.add_argument(
        "--json", action="store_true", help="parse each line as JSON and print each result as JSON (JSON Lines)"
    )
    cmd.add_argument(
        "--progress",
        action="store_true",
        help="count finished lines in a bar on stderr (printed results stay on lines of their own)",
    )
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
_CONVERT: dict[str, Callable[[str], Any]] = {"str": str, "int": int, "float": float}


class _Line:
    """Calls the user's function on one numbered line; never raises, so one bad line
    does not stop the others. Returns ``(line number, ok, text)``.

    Args:
        fn: the user's function.
        kind: ``"str"``, ``"int"``, ``"float"`` (convert the line) or ``"json"`` (parse
            the line as JSON and print the result as JSON).
    """

    def __init__(self, fn: Callable[[Any], Any], kind: str = "str") -> None:
        self.fn = fn
        self.kind = kind

    def __call__(self, number: int, line: str) -> tuple[int, bool, str]:
        try:
            value = self._read(line)
        except ValueError as exc:
            return number, False, str(exc)
        try:
            result = self.fn(value)
        except Exception as exc:
            return number, False, f"{type(exc).__name__}: {exc}"
        if self.kind != "json":
            return number, True, str(result)
        try:
            return number, True, json.dumps(result, ensure_ascii=False)
        except (TypeError, ValueError) as exc:
            return number, False, f"the result is not JSON: {type(exc).__name__}: {exc}"

    def _read(self, line: str) -> Any:
        if self.kind == "json":
            try:
                return json.loads(line)
            except ValueError as exc:
                raise ValueError(f"not JSON ({exc}): {line[:60]!r}") from None
        try:
            return _CONVERT[self.kind](line)
        except ValueError:
            raise ValueError(f"--type {self.kind}: cannot read {line[:60]!r} as {self.kind}") from None


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
    output = _Output(progress=args.progress)
    with pool:
        line = _Line(fn, "json" if args.json else args.type)
        results = verb(line, itertools.count(1), _lines(), chunksize=args.chunksize)
        try:
            failed = _print_results(results, output, ordered=not args.unordered)
        except BrokenPipeError:  # the reader went away (| head): stop quietly
            results.close()
            _silence_stdout()
            return BROKEN_PIPE
        finally:
            output.close()
    return min(failed, MAX_STATUS)


def _same_terminal() -> bool:
    """True when stdout and stderr are one terminal, where a bar and results share lines."""
    try:
        if not (os.isatty(sys.stdout.fileno()) and os.isatty(sys.stderr.fileno())):
            return False
        out, err = os.fstat(sys.stdout.fileno()), os.fstat(sys.stderr.fileno())
    except (OSError, ValueError):  # a replaced or closed stream
        return False
    return (out.st_rdev, out.st_ino) == (err.st_rdev, err.st_ino)


class _Output:
    """Results to stdout, failures to stderr, and the ``--progress`` bar on stderr.

    The bar counts lines printed or reported, and is drawn from this (the main) thread
    only. Where the bar and the results share a terminal, the bar is wiped before each
    line is written and drawn again below it, so no result is glued to the bar.
    """

    def __init__(self, *, progress: bool) -> None:
        self.bar: Any = None
        if progress:
            from tqdm.std import tqdm

            # Drawn from this thread as lines print: tqdm's monitor thread is not needed.
            bar_class = type("PathosCliTqdm", (tqdm,), {"monitor_interval": 0})
            self.bar = bar_class(unit="line", file=sys.stderr, dynamic_ncols=True, mininterval=0.1)
        self.shared = progress and _same_terminal()

    def result(self, text: str) -> None:
        """Print one result."""
        self._write(sys.stdout, text, clear=self.shared)

    def failure(self, text: str) -> None:
        """Report one failed line on stderr."""
        self._write(sys.stderr, text, clear=self.bar is not None)

    def _write(self, stream: Any, text: str, *, clear: bool) -> None:
        if clear:
            self.bar.clear()
            sys.stderr.flush()  # the bar's final "\r" is not flushed by tqdm
            stream.write(text + "\n")
            stream.flush()
            self.bar.refresh()
        else:
            stream.write(text + "\n")
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        """Close the bar (its last state stays on stderr)."""
        if self.bar is not None:
            self.bar.close()


def _print_results(results: Iterator[tuple[int, bool, str]], output: _Output, *, ordered: bool) -> int:
    """Print each result, report each failure; returns the number of failed lines."""
    failed = done = 0
    while True:
        try:
            number, ok, text = next(results)
        except StopIteration:
            return failed
        except Exception as exc:  # the engine lost the line (a crashed worker, ...)
            number, ok, text = (done + 1 if ordered else 0), False, f"{type(exc).__name__}: {exc}"
        done += 1
        if ok:
            output.result(text)
        else:
            failed += 1
            output.failure(f"line {number or '?'}: {text}")


# -- bench --------------------------------------------------------------------------------
def _bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from ._bench import Sizes, run_bench
    from ._config import cpu_count

    run_bench(args.nodes or cpu_count(), Sizes.quick() if args.quick else Sizes(), rounds=args.rounds)
    return 0
