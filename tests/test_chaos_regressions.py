"""Minimal, deterministic reproductions of what the chaos suite (tests/test_chaos.py) found.

Each test names the case of issue 9 it reproduces and the branch whose engine work fixes
it; until that branch is merged it is an expected failure (``strict=False``: it passes
once the fix lands, and then the marker can go). Every wait is bounded: a hang fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any, Iterator

import pytest

from pathos import TaskTimeoutError
from pathos.pools import ProcessPool, ThreadPool

from . import _cases, _chaos_cases
from .conftest import make_pool

BOUND = 10  # seconds: every call here takes well under one


def _item(i: int, action: str = "ok") -> tuple[int, str, float, None]:
    return (i, action, 0.0, None)


def _outcomes(it: Any, limit: int) -> list[Any]:
    """Every outcome of an iterator (values, or error type names), each waited for BOUND s."""
    out: list[Any] = []
    for _ in range(limit):
        try:
            out.append(it.next(BOUND))
        except StopIteration:
            return out
        except BaseException as exc:
            out.append(type(exc).__name__)
    raise AssertionError(f"more than {limit} outcomes: {out[-5:]}")


# -- issue 9 #1: a child never sees its parent's pools --------------------------------------


def test_nested_pool_with_the_default_id_in_a_forked_worker() -> None:
    # The outer pool is cached under the default id (2); a worker forked from this
    # process used to find it in its copy of the cache and wait on a manager thread
    # that does not exist there. Chaos seed: any 'nested' item on the fork kind.
    pool = ProcessPool(2)
    try:
        result = pool.amap(_chaos_cases.chaos_task, [_item(0, "nested"), _item(1, "nested")])
        assert result.get(BOUND) == [5, 6]
    finally:
        pool.terminate()
        pool.clear()


@pytest.mark.parametrize("cls", [ThreadPool, ProcessPool], ids=["thread", "process"])
def test_a_forked_child_gets_new_pools(cls: Any) -> None:
    # Chaos: kind=thread seed=928562427, steps: ThreadPool(2) created, then os.fork().
    pool = cls(2)
    assert pool.map(_cases.square, range(4)) == [0, 1, 4, 9]
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                child = cls(2)
                code = 0 if child.amap(_cases.square, range(4)).get(BOUND) == [0, 1, 4, 9] else 3
                child.terminate()
            finally:
                os._exit(code)
        deadline = time.monotonic() + BOUND + 5
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0:
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                raise AssertionError("the forked child's pool hung")
            time.sleep(0.02)
        assert os.waitstatus_to_exitcode(status[1]) == 0, "the forked child's pool failed"
    finally:
        pool.terminate()
        pool.clear()


# -- issue 9 #6: items read before an input error all come back, then the error -----------


def _breaks_after(n: int) -> Iterator[Any]:
    for i in range(n):
        yield _item(i)
    raise KeyError("the input broke")


@pytest.mark.parametrize("kind", ["serial", "thread", "process"])
@pytest.mark.parametrize("n", [6, 40], ids=["in-first-window", "later"])
def test_imap_input_error_comes_after_every_item_read(kind: str, n: int) -> None:
    # Chaos: kind=serial seed=4142066709 (uimap, input breaking after 6 items: uimap()
    # itself raised); 40 items: only 16 (serial 8) came back before the error.
    pool = make_pool(kind)
    try:
        it = pool.imap(_chaos_cases.chaos_task, _breaks_after(n))  # must not raise here
        assert _outcomes(it, n + 5) == [i * i for i in range(n)] + ["KeyError"]
        uit = pool.uimap(_chaos_cases.chaos_task, _breaks_after(n))
        got = _outcomes(uit, n + 5)
        assert sorted(got[:-1]) == [i * i for i in range(n)] and got[-1] == "KeyError"
    finally:
        pool.terminate()
        pool.clear()


# -- issue 9 #9: timeout= is per item, not per batch ---------------------------------------


@pytest.mark.parametrize(
    "kind",
    [
        "thread",
        "process",
    ],
)
def test_a_late_item_fails_alone_in_its_batch(kind: str) -> None:
    # Chaos: kind=thread seed=2212313477, imap chunksize=4, item 4 slow, timeout=0.5:
    # items 5 and 6 (same batch) failed with "item 4 ran longer than its timeout".
    plan = ["ok"] * 4 + ["slow"] + ["ok"] * 2
    pool = make_pool(kind)
    try:
        items = [_item(i, a) for i, a in enumerate(plan)]
        got = _outcomes(pool.imap(_chaos_cases.chaos_task, items, chunksize=4, timeout=0.5), 10)
        assert got == [0, 1, 4, 9, "TaskTimeoutError", 25, 36]
    finally:
        pool.terminate()
        pool.clear()


# -- issue 9 #16: SystemExit in a task comes back as itself, promptly ---------------------


@pytest.mark.parametrize(
    "kind",
    [
        "serial",
        "thread",
        "process",
    ],
)
def test_system_exit_in_a_task_comes_back_as_itself(kind: str) -> None:
    # Chaos: kind=serial seed=3412986054 (apipe() itself raised SystemExit); kind=fork
    # seed=4002426604 (imap item 3 gave WorkerCrashedError, exit code 3); merged engine,
    # kind=serial seed=3173513583: imap's SystemExit of item 32 surfaced at item 4 (the
    # window's refill runs items inline and the exception escapes from next()).
    pool = make_pool(kind)
    try:
        result = pool.apipe(_chaos_cases.chaos_task, _item(3, "sysexit"))  # returns at once
        with pytest.raises(SystemExit) as info:
            result.get(BOUND)
        assert info.value.code == 3
        got = _outcomes(
            pool.imap(_chaos_cases.chaos_task, [_item(i, "sysexit" if i == 1 else "ok") for i in range(3)]), 5
        )
        assert got == [0, "SystemExit", 4]
        assert pool.map(_cases.square, range(3)) == [0, 1, 4]  # the pool stays usable
    finally:
        pool.terminate()
        pool.clear()


def test_chaos_items_fail_for_their_own_cause() -> None:
    # Guards the tests above: an "exit" item is a WorkerCrashedError at its position and
    # a "slow" one a TaskTimeoutError, so a test above fails for its cause, not the helpers.
    pool = make_pool("process")
    try:
        got = _outcomes(pool.imap(_chaos_cases.chaos_task, [_item(0), _item(1, "exit"), _item(2)], chunksize=1), 5)
        assert got == [0, "WorkerCrashedError", 4]
        with pytest.raises(TaskTimeoutError):
            pool.map(_chaos_cases.chaos_task, [_item(0, "slow")], timeout=0.3)
    finally:
        pool.clear()


def test_system_exit_keeps_its_code_once_distributed_is_imported() -> None:
    # Merged engine, chaos soak seed 20261126, kind=fork seed=120820133: after the soak's
    # parallel rounds, uimap gave SystemExit with code None for item 22 (str() still
    # '22'). Importing distributed installs tblib's pickling for every exception class,
    # which rebuilds an exception without calling __init__: SystemExit.code is lost.
    pytest.importorskip("distributed")
    pool = make_pool("process")
    try:
        with pytest.raises(SystemExit) as info:
            pool.pipe(_chaos_cases.chaos_task, _item(22, "sysexit"))
        assert info.value.code == 22
    finally:
        pool.terminate()
        pool.clear()


# Every kind of exception a task raises comes back whole (type, args, attributes), whether
# or not the process imported ``distributed`` (whose tblib hook rebuilt exceptions without
# ``__init__``). Each run is a fresh interpreter, so the import state is the one named.
EXCEPTIONS_SCRIPT = textwrap.dedent(
    """
    import errno, json, sys

    if sys.argv[2] == "distributed":
        import distributed  # noqa: F401  (installs tblib's pickling for every exception)

    from pathos._serialize import dumps, loads
    from pathos.pools import ParallelPool, ProcessPool


    class TwoArgs(Exception):  # __init__ takes what args does not hold: plain pickle fails
        def __init__(self, a, b):
            super().__init__(f"{a}/{b}")
            self.a, self.b = a, b


    class Reduced(Exception):  # its own __reduce__
        def __init__(self, x):
            super().__init__()
            self.x = x

        def __reduce__(self):
            return (Reduced, (self.x,))


    CASES = {
        "SystemExit": lambda: SystemExit(3),
        "KeyboardInterrupt": lambda: KeyboardInterrupt("stop"),
        "GeneratorExit": lambda: GeneratorExit("closed"),
        "OSError": lambda: OSError(errno.ENOENT, "missing", "/no/such", None, "/other"),
        "TwoArgs": lambda: TwoArgs(1, "b"),
        "Reduced": lambda: Reduced([5]),
    }


    def facts(exc):
        names = ("code", "errno", "strerror", "filename", "filename2")
        attrs = {n: getattr(exc, n) for n in names if hasattr(exc, n)}
        return [type(exc).__name__, list(exc.args), attrs, {k: v for k, v in vars(exc).items()}]


    def task(name):
        raise CASES[name]()


    def outcome(pool_kind, name):
        if pool_kind == "serialize":
            try:
                return facts(loads(dumps(CASES[name]())))
            except Exception as exc:
                return f"would not travel: {exc!r}"
        try:
            pool.pipe(task, name)
        except BaseException as exc:
            return facts(exc)
        return "no exception"


    if __name__ == "__main__":
        pool_kind = sys.argv[1]
        pool = None
        if pool_kind == "process":
            pool = ProcessPool(2, id="exceptions-process")
        elif pool_kind == "parallel":
            pool = ParallelPool(2, id="exceptions-parallel")
        try:
            got = {name: [outcome(pool_kind, name), facts(make())] for name, make in CASES.items()}
        finally:
            if pool is not None:
                pool.terminate()
                pool.clear()
        print(json.dumps(got))
    """
)
EXCEPTION_KINDS = ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "OSError", "TwoArgs", "Reduced"]
EXCEPTION_RUNS = [
    ("serialize", "plain"),
    ("serialize", "distributed"),
    ("process", "plain"),
    ("process", "distributed"),
    ("parallel", "distributed"),  # a ParallelPool imports distributed itself
]
_exception_runs: dict[tuple[str, str], Any] = {}


def _exceptions_run(tmp_path_factory: Any, pool_kind: str, imports: str) -> Any:
    """The script's outcomes for one (pool, import state), run once for all exception kinds."""
    key = (pool_kind, imports)
    if key not in _exception_runs:
        if "distributed" in (imports, pool_kind) or pool_kind == "parallel":
            pytest.importorskip("distributed")
        script = tmp_path_factory.mktemp("exceptions") / "raise_them.py"
        script.write_text(EXCEPTIONS_SCRIPT)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
        out = subprocess.run(
            [sys.executable, str(script), pool_kind, imports], capture_output=True, text=True, timeout=180, env=env
        )
        _exception_runs[key] = (out.returncode, out.stdout, out.stderr)
    returncode, stdout, stderr = _exception_runs[key]
    assert returncode == 0, stderr[-3000:]
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", EXCEPTION_KINDS)
@pytest.mark.parametrize(("pool_kind", "imports"), EXCEPTION_RUNS)
def test_exceptions_come_back_whole_whatever_is_imported(
    tmp_path_factory: Any, pool_kind: str, imports: str, name: str
) -> None:
    got, expected = _exceptions_run(tmp_path_factory, pool_kind, imports)[name]
    assert got == expected
