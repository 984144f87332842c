"""The chaos machine: random interleavings of every verb and lifecycle call on one pool,
checked against what the README promises (issue 9, "Prove it").

Hypothesis drives :class:`ChaosMachine` (a ``RuleBasedStateMachine``): it starts calls
(``map``, ``imap``, ``uimap``, ``amap``, ``apipe``, ``submit``, ``pipe``) whose items raise,
crash their worker (``os._exit``), run past ``timeout=``, raise ``SystemExit``, return big
buffers (shared memory) or use a nested pool; it feeds inputs that raise part-way; it
consumes iterators partly, closes and cancels calls, closes, joins, terminates, clears and
restarts the pool, kills workers from outside with SIGKILL and forks the test process.

Invariants, checked at every step:

- every call ends within :data:`BOUND` seconds (a :class:`Hung` failure otherwise);
- every outcome is the item's right value, or an error that item may have, at its
  position (``imap``) or once per item (``uimap``);
- a finished call is never rewritten by a later ``terminate()``, ``clear()`` or kill, and
  an item that finished never runs again (each item's runs are counted in a file);
- after the last ``clear()``, no worker process, ``pathos-*`` thread, file descriptor or
  ``/dev/shm/pathos-<pid>-*`` file is left (checked within :data:`SETTLE` seconds).

``tests/test_chaos.py`` runs it under pytest; ``python -m tests.chaos_soak`` runs it for
minutes with a printed seed. Everything blocking is bounded by :class:`Watchdog`, so the
machine itself never hangs.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import os
import signal
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import CancelledError
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, precondition, rule

from pathos import PoolClosedError, TaskTimeoutError, WorkerCrashedError, WorkerInitError
from pathos.pools import ParallelPool, ProcessPool, SerialPool, ThreadPool

from . import _cases, _chaos_cases

BOUND = 30.0  # seconds any one call may take; more is a hang
FORK_BOUND = 15.0  # seconds a forked child's pools may take
SETTLE = 8.0  # seconds after clear() for workers, threads, fds and shm files to go
TIMEOUT = 0.5  # the timeout= of calls that have a slow item (it sleeps CHAOS_SLOW)
STATS: Counter[str] = Counter()  # operations run, by rule (the soak prints it)

# kind -> (pool class, context): the process kinds use the default pool id, as users do,
# so a nested pool or a forked child meets the cached pool if it is (wrongly) shared.
KINDS: dict[str, tuple[type, str | None]] = {
    "serial": (SerialPool, None),
    "thread": (ThreadPool, None),
    "fork": (ProcessPool, None),  # fork is the default start method on Linux
    "spawn": (ProcessPool, "spawn"),
    "forkserver": (ProcessPool, "forkserver"),
    "parallel": (ParallelPool, None),
}
PROCESS_KINDS = ("fork", "spawn", "forkserver")
SHARED_PARALLEL_ID = "test-parallel-shared"  # conftest's shared local Dask cluster


# Features to leave out, comma-separated in PATHOS_CHAOS_AVOID: item actions (raise,
# slow, big, exit, sysexit, nested; "serial:sysexit" for one kind only), "breaks"
# (inputs that raise), lifecycle calls (close,
# join, terminate, clear, restart), verbs, and the rules kill_worker, fork, cancel and
# close_iterator. For hunting a second bug while a first one is still open.
# KNOWN_OPEN: bugs still open with every engine branch merged, each kept by an xfail test
# in tests/test_chaos_regressions.py; left out so that the suite hunts for new ones.
# PATHOS_CHAOS_AVOID=none puts them back in.
KNOWN_OPEN: frozenset[str] = frozenset()  # none left with core, job, proc and dask merged
_avoid = os.environ.get("PATHOS_CHAOS_AVOID", "")
AVOID = frozenset(filter(None, _avoid.split(","))) | (frozenset() if _avoid == "none" else KNOWN_OPEN)


def actions_for(kind: str) -> list[str]:
    """What items may do on this kind of pool."""
    actions = ["raise", "slow", "big"]
    if kind in PROCESS_KINDS:
        actions += ["exit", "sysexit", "nested"]
    elif kind in ("serial", "thread"):
        actions += ["sysexit", "nested"]
    return [a for a in actions if a not in AVOID and f"{kind}:{a}" not in AVOID] or ["ok"]


class Hung(BaseException):
    """A bounded call did not return in time (a BaseException: nothing swallows it)."""


class Broken(AssertionError):
    """An invariant was broken."""


# -- bounding blocking calls -----------------------------------------------------------


class Watchdog:
    """Bounds blocking calls made on the main thread.

    A helper thread watches the deadline of the current :meth:`bound` block; past it, it
    sends SIGUSR2 to the main thread, whose handler raises :class:`Hung`. A real signal
    wakes a blocked ``lock.acquire()``, so even a deadlocked wait ends.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._deadline: float | None = None
        self._what: str | None = None
        self._thread: threading.Thread | None = None
        self._stacks = ""

    def _watch(self) -> None:
        with self._cond:
            while True:
                deadline = self._deadline
                if deadline is None:
                    self._cond.wait()
                    continue
                left = deadline - time.monotonic()
                if left > 0:
                    self._cond.wait(left)
                    continue
                self._deadline = None  # fire once per block
                self._stacks = _engine_stacks()
                signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR2)

    def _on_signal(self, signum: int, frame: Any) -> None:
        what = self._what
        if what is not None:  # else the block ended just before the signal arrived
            self._what = None
            raise Hung(f"{what} did not return within its bound: a hang. Engine threads then:\n{self._stacks}")

    @contextlib.contextmanager
    def bound(self, what: str, seconds: float = BOUND) -> Iterator[None]:
        """Run the block; raise :class:`Hung` in it if it takes over ``seconds``."""
        if threading.current_thread() is not threading.main_thread():
            yield  # only the main thread can be interrupted; the soak and pytest run there
            return
        if self._thread is None:
            self._thread = threading.Thread(target=self._watch, name="chaos-watchdog", daemon=True)
            self._thread.start()
        previous = signal.signal(signal.SIGUSR2, self._on_signal)
        outer = (self._what, self._deadline)
        self._what = what
        with self._cond:
            self._deadline = time.monotonic() + seconds
            self._cond.notify()
        try:
            yield
        except Hung as exc:
            # Hung is a BaseException so that no engine code swallows it; out here it
            # becomes an ordinary failure, which Hypothesis reports with its steps.
            raise Broken(str(exc)) from exc
        finally:
            with self._cond:
                self._what, self._deadline = outer
                self._cond.notify()
            signal.signal(signal.SIGUSR2, previous)


def _engine_stacks() -> str:
    """Where each pathos thread is, in a few lines each (for a hang's report)."""
    import sys
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    out = []
    for ident, frame in sys._current_frames().items():
        name = names.get(ident, "?")
        if name.startswith("pathos-"):
            lines = traceback.format_stack(frame)[-3:]
            out.append(f"  {name}:\n" + "".join("    " + line.strip().replace("\n", " | ") + "\n" for line in lines))
    return "".join(out) or "  (none)\n"


WATCHDOG = Watchdog()
bound = WATCHDOG.bound


# -- calls and what each of their items may give ----------------------------------------


class InputBroke(Exception):
    """What a chaos input iterator raises part-way through."""


@dataclass
class Call:
    """One call on the pool, and what has been seen of it."""

    num: int
    verb: str
    plan: list[str]  # the action of each item
    timeout: float | None
    retries: int
    runs: str | None  # the folder counting each item's runs
    breaks_at: int | None = None  # the input raises after this many items
    handle: Any = None
    seen: list[Any] = field(default_factory=list)  # outcomes so far, in arrival order
    done: bool = False
    terminated: bool = False  # terminate() happened while it was unfinished
    killed: bool = False  # a worker was killed while it was unfinished
    cancelled: bool = False  # cancel() said yes, or the caller closed the iterator
    taken: list[int] = field(default_factory=list)  # uimap: the items accounted for
    loose: int = 0  # uimap: errors given that name no item of their own
    snapshot: Any = None  # the outcome of a finished eager call, to check it is kept

    @property
    def n(self) -> int:
        return len(self.plan) if self.breaks_at is None else min(self.breaks_at, len(self.plan))

    def item(self, i: int) -> tuple[int, str, float, str | None]:
        action = self.plan[i]
        return (i, action if action != "pause" else "ok", 0.003 if action == "pause" else 0.0, self.runs)

    def inputs(self) -> Any:
        if self.breaks_at is None:
            items = [self.item(i) for i in range(len(self.plan))]
            return items if self.num % 2 else iter(items)  # lists and lazy iterators
        return self._breaking()

    def _breaking(self) -> Iterator[Any]:
        for i in range(len(self.plan) + 1):  # it may break after the last item too
            if i == self.breaks_at:
                raise InputBroke(f"input of call {self.num} broke after {i} items")
            if i < len(self.plan):
                yield self.item(i)

    def value(self, i: int) -> Any:
        action = self.plan[i]
        if action == "big":
            return bytes([i % 256]) * _chaos_cases.CHAOS_BIG
        if action == "nested":
            return i * i + 5
        return i * i

    def own_errors(self, i: int, kind: str) -> tuple[type[BaseException], ...]:
        """The errors item ``i`` may give by itself."""
        action = self.plan[i]
        errors: tuple[type[BaseException], ...] = ()
        if action == "raise":
            errors = (_chaos_cases.ChaosError,)
        elif action == "exit":
            errors = (WorkerCrashedError,)
        elif action == "sysexit":
            errors = (SystemExit,)
        elif action in ("slow", "nested") and self.timeout is not None:
            errors = (TaskTimeoutError,)  # a nested pool may take longer than timeout= to start
        if kind == "parallel" and self.timeout is not None:
            errors += (TaskTimeoutError,)  # Dask times out whole batches (README: Clusters)
        return errors

    def must_fail(self, i: int, kind: str) -> bool:
        action = self.plan[i]
        return action in ("raise", "exit", "sysexit") or (action == "slow" and self.timeout is not None)

    def outside_errors(self) -> tuple[type[BaseException], ...]:
        """Errors any unfinished item may give because of what happened to the pool."""
        errors: tuple[type[BaseException], ...] = ()
        if self.terminated:
            errors += (PoolClosedError,)
        if self.killed:
            # A worker killed while it starts counts as one that died at start: three in
            # a row are a WorkerInitError, by design (the kills cannot be told from OOM).
            errors += (WorkerCrashedError, WorkerInitError)
        return errors

    def allowed(self, i: int, outcome: Any, kind: str) -> bool:
        if isinstance(outcome, BaseException):
            if isinstance(outcome, _chaos_cases.ChaosError) and outcome.args != (i,):
                return False  # another item's error at this position
            if isinstance(outcome, SystemExit) and _exit_code(outcome) != i:
                return False
            return isinstance(outcome, self.own_errors(i, kind) + self.outside_errors())
        return bool(outcome == self.value(i)) and not self.must_fail(i, kind)


def _item_of(error: BaseException) -> Any:
    """The position an error names, if it names one."""
    if isinstance(error, _chaos_cases.ChaosError):
        return error.args[0]
    if isinstance(error, SystemExit):
        return _exit_code(error)
    return getattr(error, "task", None)


def _exit_code(error: SystemExit) -> Any:
    """Its code, which must survive the trip whatever the process imported (tblib's hook,
    installed by ``distributed``, once lost it: see test_chaos_regressions.py)."""
    return error.code


def describe(outcome: Any) -> str:
    if isinstance(outcome, BaseException):
        return f"{type(outcome).__name__}({str(outcome)[:80]!r})"
    if isinstance(outcome, bytes):
        return f"bytes(len={len(outcome)}, first={outcome[:1]!r})"
    return repr(outcome)[:80]


def outcome_of(fn: Callable[[], Any]) -> Any:
    """``fn()``'s value, or the exception it raised (a Hung goes on up)."""
    try:
        return fn()
    except Hung:
        raise
    except BaseException as exc:
        return exc


# -- what must not outlive clear() -------------------------------------------------------


@dataclass
class Snapshot:
    children: set[int]
    threads: set[int]
    fds: int
    shm: set[str]


def _live_children() -> list[Any]:
    import psutil

    out = []
    for child in psutil.Process(os.getpid()).children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if child.status() != psutil.STATUS_ZOMBIE:
                out.append(child)
    return out


def _helper_process(child: Any) -> bool:
    """multiprocessing's own helpers (forkserver, resource tracker) live on by design."""
    import psutil

    try:
        if child.ppid() != os.getpid():
            return False
        line = " ".join(child.cmdline())
    except psutil.Error:
        return True
    return "forkserver" in line or "resource_tracker" in line


def _shm_files() -> set[str]:
    prefix = f"pathos-{os.getpid()}-"
    try:
        return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}
    except OSError:
        return set()


def snapshot() -> Snapshot:
    return Snapshot(
        children={c.pid for c in _live_children()},
        threads={t.ident or 0 for t in threading.enumerate() if t.name.startswith("pathos-")},
        fds=len(os.listdir("/proc/self/fd")),
        shm=_shm_files(),
    )


# Threads that serve every pool of the process, started once and kept by design.
PER_PROCESS = ("pathos-callbacks",)


def leaks(base: Snapshot, *, processes: bool = True, threads: bool = True) -> list[str]:
    """What is left over since ``base``, after waiting up to :data:`SETTLE` seconds."""
    deadline = time.monotonic() + SETTLE
    while True:
        found = []
        if processes:
            extra = [c for c in _live_children() if c.pid not in base.children and not _helper_process(c)]
            if extra:
                found.append(f"processes {[c.pid for c in extra]}")
        if threads:
            ours = [t for t in threading.enumerate() if t.name.startswith("pathos-") and t.name not in PER_PROCESS]
            names = [t.name for t in ours if t.ident not in base.threads]
            if names:
                found.append(f"threads {names}")
            fds = len(os.listdir("/proc/self/fd"))
            if fds > base.fds + 3:
                found.append(f"{fds - base.fds} file descriptors")
        shm = _shm_files() - base.shm
        if shm:
            found.append(f"/dev/shm files {sorted(shm)[:4]}")
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def pool_workers(base: Snapshot) -> list[int]:
    """Processes started since ``base`` that a kill may hit (workers, nested pools)."""
    return sorted(c.pid for c in _live_children() if c.pid not in base.children and not _helper_process(c))


# -- the machine ---------------------------------------------------------------------------

VERBS = [v for v in ("map", "imap", "uimap", "amap", "apipe", "submit", "pipe") if v not in AVOID]
EAGER = ("map", "amap", "apipe", "submit", "pipe")
# What every call draws besides its verb (the two rules that start calls share them).
CALL_OPTIONS: dict[str, Any] = {
    "data": st.data(),
    "timed": st.booleans(),
    "retries": st.sampled_from([0, 0, 1]),
    "chunksize": st.sampled_from([None, None, 1, 4]),
    "breaks": st.booleans(),
}
VERBS_ALL = ("map", "imap", "uimap", "amap", "apipe", "submit", "pipe")
SINGLE = ("apipe", "submit", "pipe")
LIFECYCLE = [op for op in ("close", "join", "terminate", "clear", "restart") if op not in AVOID] or ["clear"]


@st.composite
def plans(draw: Any, actions: list[str], max_items: int) -> list[str]:
    """What each item of a call does: mostly plain, a few special ones."""
    n = draw(st.integers(0, max_items))
    plan = ["pause" if draw(st.booleans()) else "ok"] * n
    if n:
        specials = draw(st.lists(st.tuples(st.integers(0, n - 1), st.sampled_from(actions)), max_size=2))
        for pos, action in specials:
            if action in ("slow", "exit") and action in plan:
                continue  # one slow item (it costs seconds) and one crash per call
            plan[pos] = action
    return plan


def step(fn: Callable[..., None]) -> Callable[..., None]:
    """Count the operation and remember a failure (teardown then only cleans up)."""

    def run(self: ChaosMachine, *args: Any, **kwds: Any) -> None:
        STATS[fn.__name__] += 1
        try:
            fn(self, *args, **kwds)
        except BaseException:
            self.failed = True
            raise

    return functools.wraps(fn)(run)


class ChaosMachine(RuleBasedStateMachine):
    """One pool of kind :attr:`KIND`, driven at random; see the module docstring."""

    KIND = "thread"
    MAX_ITEMS = 40

    def __init__(self) -> None:
        super().__init__()
        self.kind = self.KIND
        self.failed = False
        self.calls: list[Call] = []
        self.state = "run"  # what the pool should be: run, closed, terminated, or fresh (none cached)
        self.nums = itertools.count()
        self.tmp = tempfile.mkdtemp(prefix="pathos-chaos-")
        _start_helpers(self.kind)
        _forget_pools()
        self.base = snapshot()
        with bound("creating the pool"):
            self.pool = self._new_pool()

    def _new_pool(self) -> Any:
        cls, context = KINDS[self.kind]
        if cls is SerialPool:
            return SerialPool()
        if cls is ParallelPool:
            return ParallelPool(2, id=SHARED_PARALLEL_ID)
        return cls(2) if context is None else cls(2, context=context)

    def fail(self, call: Call | None, message: str) -> None:
        where = "" if call is None else f"call {call.num} ({call.verb}, plan={call.plan}, timeout={call.timeout}, "
        where += "" if call is None else f"retries={call.retries}, breaks_at={call.breaks_at}): "
        raise Broken(f"[{self.kind}] {where}{message}")

    # -- starting calls ---------------------------------------------------------------
    # Two rules start calls (Hypothesis picks among rules evenly): calls are the point.
    @rule(verb=st.sampled_from([v for v in VERBS if v in EAGER] or ["map"]), **CALL_OPTIONS)
    @step
    def start(self, verb: str, data: Any, timed: bool, retries: int, chunksize: int | None, breaks: bool) -> None:
        """Start a call (``map`` and ``pipe`` run to the end at once)."""
        self._start(verb, data, timed, retries, chunksize, breaks)

    @rule(verb=st.sampled_from([v for v in VERBS if v not in EAGER] or ["imap"]), **CALL_OPTIONS)
    @step
    def stream(self, verb: str, data: Any, timed: bool, retries: int, chunksize: int | None, breaks: bool) -> None:
        """Start an ``imap`` or ``uimap``."""
        self._start(verb, data, timed, retries, chunksize, breaks)

    def _start(self, verb: str, data: Any, timed: bool, retries: int, chunksize: int | None, breaks: bool) -> None:
        plan = data.draw(plans(actions_for(self.kind), 1 if verb in SINGLE else self.MAX_ITEMS), label="plan")
        single = verb in SINGLE
        call = Call(
            num=next(self.nums),
            verb=verb,
            plan=plan if not single else (plan or ["ok"]),
            timeout=TIMEOUT if timed and not single else None,
            retries=0 if single else retries,
            runs=tempfile.mkdtemp(dir=self.tmp) if self.kind != "parallel" else None,
        )
        if breaks and not single and "breaks" not in AVOID:
            call.breaks_at = data.draw(st.integers(0, len(call.plan)), label="breaks_at")
        self.calls.append(call)
        opts: dict[str, Any] = {"chunksize": chunksize, "timeout": call.timeout, "retries": call.retries or None}
        opts = {k: v for k, v in opts.items() if v is not None}
        with bound(f"{verb}() of call {call.num}"):
            outcome = outcome_of(lambda: self._begin(call, opts))
        if self.state == "fresh" and self.pool._cached_backend() is not None:
            self.state = "run"  # the call started a pool (one whose input broke may not have)
        if self.state not in ("run", "fresh"):
            call.done = True
            if not isinstance(outcome, (PoolClosedError, InputBroke)):
                self.fail(call, f"a call on a {self.state} pool gave {describe(outcome)}, not PoolClosedError")
            return
        if verb in ("map", "pipe"):
            call.done = True
            self.check_eager(call, outcome)
        elif isinstance(outcome, BaseException):
            if isinstance(outcome, InputBroke) and verb == "amap":
                call.done = True  # amap reads its whole input first: the error comes at once
            else:
                self.fail(call, f"{verb}() itself raised {describe(outcome)}; it must return and report errors later")
        else:
            call.handle = outcome

    def _begin(self, call: Call, opts: dict[str, Any]) -> Any:
        fn, pool = _chaos_cases.chaos_task, self.pool
        if call.verb in SINGLE:
            return getattr(pool, call.verb)(fn, call.item(0))
        return getattr(pool, call.verb)(fn, call.inputs(), **opts)

    # -- checking outcomes ------------------------------------------------------------
    def check_eager(self, call: Call, outcome: Any) -> None:
        """A whole call's outcome: the right values, or an error one of its items may give."""
        if call.cancelled:
            if not isinstance(outcome, (PoolClosedError, CancelledError)):
                self.fail(call, f"a cancelled call gave {describe(outcome)}")
            return
        if isinstance(outcome, InputBroke):
            if call.breaks_at is None or call.verb not in ("map", "amap"):
                self.fail(call, f"gave {describe(outcome)}")
            return
        if isinstance(outcome, BaseException):
            if call.breaks_at is not None and call.verb in ("map", "amap"):
                self.fail(call, f"the input raised, but the call gave {describe(outcome)}")
            if not any(call.allowed(i, outcome, self.kind) for i in range(call.n)):
                self.fail(call, f"gave {describe(outcome)}, which none of its items may give")
            return
        if call.verb in SINGLE:
            if not call.allowed(0, outcome, self.kind):
                self.fail(call, f"gave {describe(outcome)}")
            return
        if not isinstance(outcome, list) or len(outcome) != call.n:
            self.fail(call, f"gave {describe(outcome)}, not a list of {call.n} results")
        bad = [i for i, v in enumerate(outcome) if not call.allowed(i, v, self.kind)]
        if bad:
            self.fail(call, f"item {bad[0]} gave {describe(outcome[bad[0]])}")

    def eager_outcome(self, call: Call, timeout: float) -> Any:
        handle = call.handle
        getter = handle.result if call.verb == "submit" else handle.get
        return outcome_of(lambda: getter(timeout))

    def pull(self, call: Call) -> bool:
        """Take the next outcome of an iterator call and check it; False at its end."""
        with bound(f"next() on call {call.num} ({call.verb})"):
            outcome = outcome_of(lambda: call.handle.next(BOUND - 5))
        if isinstance(outcome, StopIteration):
            self.check_end(call)
            call.done = True
            return False
        if type(outcome).__name__ == "ResultTimeoutError":
            self.fail(call, f"no result within {BOUND - 5} s after {len(call.seen)} outcomes: a hang")
        if call.done:
            self.fail(call, f"gave {describe(outcome)} after it had ended")
        if call.verb == "imap":
            self.check_ordered(call, outcome)
        else:
            self.check_unordered(call, outcome)
        call.seen.append(outcome)
        return True

    def _ended(self, call: Call) -> bool:
        """The iterator raised an error that ends it (the input's, or the pool stopping)."""
        return any(isinstance(o, (InputBroke, PoolClosedError)) for o in call.seen)

    def check_ordered(self, call: Call, outcome: Any) -> None:
        pos = len(call.seen)
        if self._ended(call):
            self.fail(call, f"gave {describe(outcome)} after the error that ended it")
        if isinstance(outcome, InputBroke):
            if pos != call.breaks_at:
                self.fail(call, f"the input's error came at position {pos}, not {call.breaks_at}")
            return
        if isinstance(outcome, PoolClosedError) and (call.terminated or call.cancelled):
            return
        if pos >= call.n:
            self.fail(call, f"gave {describe(outcome)} after all {call.n} items")
        if not call.allowed(pos, outcome, self.kind):
            self.fail(call, f"item {pos} gave {describe(outcome)}")

    def _unseen(self, call: Call) -> list[int]:
        left = set(range(call.n))
        left.difference_update(call.taken)
        return sorted(left)

    def check_unordered(self, call: Call, outcome: Any) -> None:
        if self._ended(call):
            self.fail(call, f"gave {describe(outcome)} after the error that ended it")
        left = self._unseen(call)
        if isinstance(outcome, InputBroke):
            if call.breaks_at is None or len(left) > call.loose:
                self.fail(call, f"the input's error came with items {left} still to come")
            return
        if isinstance(outcome, PoolClosedError) and (call.terminated or call.cancelled):
            return
        candidates = [i for i in left if call.allowed(i, outcome, self.kind)]
        if not candidates or len(left) <= call.loose:
            self.fail(call, f"gave {describe(outcome)}, which no item still to come ({left[:10]}) may give")
        if not isinstance(outcome, BaseException):
            call.taken.append(candidates[0])  # a value names its item: each comes once
            return
        named = _item_of(outcome)
        if named in candidates:
            call.taken.append(named)
        else:
            call.loose += 1  # an error that does not say which item (or names a batch)

    def check_end(self, call: Call) -> None:
        """An iterator ended: every item came back, unless an error or close() ended it early."""
        if call.done or self._ended(call) or call.cancelled:
            return
        if call.breaks_at is not None:
            self.fail(call, "ended without raising its input's error")
        if call.verb == "imap" and len(call.seen) != call.n:
            self.fail(call, f"ended after {len(call.seen)} of {call.n} items: items lost")
        if call.verb == "uimap" and len(self._unseen(call)) > call.loose:
            self.fail(call, f"ended with items {self._unseen(call)[:10]} never given: items lost")

    # -- consuming, cancelling ----------------------------------------------------------
    def open_calls(self, verbs: tuple[str, ...]) -> list[Call]:
        return [c for c in self.calls if not c.done and c.handle is not None and c.verb in verbs]

    def begun(self, verbs: tuple[str, ...]) -> bool:
        """Some call of ``verbs`` was begun: what the preconditions look at.

        Preconditions must not depend on timing (Hypothesis replays the same choices and
        expects the same rules to be enabled), so they ignore whether a call has ended;
        a rule that finds nothing left open does nothing.
        """
        return any(c.handle is not None and c.verb in verbs for c in self.calls)

    @precondition(lambda self: self.begun(("imap", "uimap")))
    @rule(pick=st.integers(0, 99), count=st.integers(1, 30))
    @step
    def consume(self, pick: int, count: int) -> None:
        """Take a few outcomes of an ``imap`` or ``uimap``."""
        calls = self.open_calls(("imap", "uimap"))
        if not calls:
            return
        call = calls[pick % len(calls)]
        for _ in range(count):
            if not self.pull(call):
                break

    @precondition(lambda self: self.begun(("amap", "apipe", "submit")))
    @rule(pick=st.integers(0, 99))
    @step
    def wait(self, pick: int) -> None:
        """Wait for an ``amap``, ``apipe`` or ``submit`` and check what it gives."""
        calls = self.open_calls(("amap", "apipe", "submit"))
        if calls:
            self.settle(calls[pick % len(calls)])

    def settle(self, call: Call) -> None:
        with bound(f"get() of call {call.num} ({call.verb})"):
            outcome = self.eager_outcome(call, BOUND - 5)
        if type(outcome).__name__ in ("ResultTimeoutError", "TimeoutError"):
            self.fail(call, f"not ready within {BOUND - 5} s: a hang")
        call.done = True
        self.check_eager(call, outcome)
        call.snapshot = outcome

    @precondition(lambda self: self.begun(("imap", "uimap")) and "close_iterator" not in AVOID)
    @rule(pick=st.integers(0, 99))
    @step
    def close_iterator(self, pick: int) -> None:
        """Stop an iterator early; it then ends at once."""
        calls = self.open_calls(("imap", "uimap"))
        if not calls:
            return
        call = calls[pick % len(calls)]
        with bound(f"close() of call {call.num}"):
            call.handle.close()
            outcome = outcome_of(lambda: call.handle.next(1))
        call.cancelled = call.done = True
        if not isinstance(outcome, StopIteration):
            self.fail(call, f"after close() next() gave {describe(outcome)}, not StopIteration")

    @precondition(lambda self: self.begun(("amap", "apipe", "submit")) and "cancel" not in AVOID)
    @rule(pick=st.integers(0, 99))
    @step
    def cancel(self, pick: int) -> None:
        """Cancel an ``amap``, ``apipe`` or ``submit``; a finished one stays as it was."""
        calls = self.open_calls(("amap", "apipe", "submit"))
        if not calls:
            return
        call = calls[pick % len(calls)]
        with bound(f"cancel() of call {call.num}"):
            cancelled = call.handle.cancel()
        if cancelled:
            call.cancelled = True
        elif call.verb != "submit" and not call.handle.ready():
            self.fail(call, "cancel() said no, yet the call is not finished")

    # -- the pool's lifecycle -------------------------------------------------------------
    def keep_finished(self) -> None:
        """Remember what finished calls gave (to check nothing rewrites them later)."""
        for call in self.calls:
            if call.handle is None or call.verb not in ("amap", "apipe", "submit") or call.snapshot is not None:
                continue
            done = call.handle.done() if call.verb == "submit" else call.handle.ready()
            if done:
                self.settle(call)

    def check_kept(self, what: str) -> None:
        for call in self.calls:
            if call.snapshot is None or call.handle is None:
                continue
            with bound(f"get() of finished call {call.num}"):
                now = self.eager_outcome(call, 1)
            was = call.snapshot
            same = type(now) is type(was) if isinstance(was, BaseException) else now == was
            if not same:
                self.fail(call, f"it had given {describe(was)}; after {what} it gives {describe(now)}")

    def unfinished(self) -> list[Call]:
        return [c for c in self.calls if c.handle is not None and not c.done and c.snapshot is None]

    @rule(op=st.sampled_from(LIFECYCLE))
    @step
    def lifecycle(self, op: str) -> None:
        """``close``, ``join``, ``terminate``, ``clear`` or ``restart`` the pool."""
        self.keep_finished()
        if op == "terminate":
            for call in self.unfinished():
                call.terminated = True
        with bound(f"pool.{op}()"):
            outcome = outcome_of(getattr(self.pool, op))
        if op == "join" and self.state == "run":
            if not isinstance(outcome, ValueError):
                self.fail(None, f"join() on a running pool gave {describe(outcome)}, not PoolRunningError")
        elif isinstance(outcome, BaseException):
            self.fail(None, f"pool.{op}() raised {describe(outcome)}")
        # pathos's cache: clear() forgets the pool's workers, and close(), join() or
        # terminate() on a pool with none cached do nothing; its next call starts new ones.
        if op == "clear":
            self.state = "fresh"
        elif op == "restart" and self.state != "fresh":
            self.state = "run"
        elif op == "terminate" and self.state != "fresh":
            self.state = "terminated"
        elif op == "close" and self.state == "run":
            self.state = "closed"
        self.check_kept(f"{op}()")

    @precondition(lambda self: self.kind in PROCESS_KINDS and "kill_worker" not in AVOID and self.begun(VERBS_ALL))
    @rule(pick=st.integers(0, 99))
    @step
    def kill_worker(self, pick: int) -> None:
        """SIGKILL a worker (or a nested pool's worker) from outside."""
        pids = pool_workers(self.base)
        if not pids:
            return
        self.keep_finished()
        for call in self.unfinished():
            call.killed = True
        with contextlib.suppress(ProcessLookupError):
            os.kill(pids[pick % len(pids)], signal.SIGKILL)
        self.check_kept("a worker was killed")

    @precondition(lambda self: self.kind != "parallel" and "fork" not in AVOID and self.begun(VERBS_ALL))
    @rule()
    @step
    def fork(self) -> None:
        """Fork this process: the child's new pools must work (they are not the parent's)."""
        pid = os.fork()
        if pid == 0:
            _forked_child()
        deadline = time.monotonic() + FORK_BOUND + 5
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                self.fail(None, f"a forked child's pools did not finish within {FORK_BOUND} s: a hang")
            time.sleep(0.02)
        code = os.waitstatus_to_exitcode(status)
        if code == 1:
            self.fail(None, f"a forked child's pools hung (no result in {FORK_BOUND} s; its stacks are on stderr)")
        if code != 0:
            self.fail(None, f"a forked child's pools failed (exit status {code}; see stderr)")

    # -- the end ----------------------------------------------------------------------------
    def teardown(self) -> None:
        try:
            if not self.failed:
                self.finish_everything()
            else:
                with contextlib.suppress(BaseException), bound("terminate() after a failure", 10):
                    self.pool.terminate()
                    self.pool.clear()
        finally:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)

    def finish_everything(self) -> None:
        """Drain every call, clear the pool, and check nothing is left or ran twice."""
        for call in self.calls:
            if call.done or call.handle is None:
                continue
            if call.verb in ("imap", "uimap"):
                for _ in range(call.n + 3):
                    if not self.pull(call):
                        break
                else:
                    self.fail(call, "gave more outcomes than it has items")
            else:
                self.settle(call)
        self.check_kept("the end")
        with bound("clear() at the end"):
            if self.kind == "parallel":
                self._release_cluster()
            else:
                self.pool.clear()
        for call in self.calls:
            self.check_runs(call)
        left = leaks(self.base, processes=self.kind != "parallel", threads=self.kind != "parallel")
        if left:
            self.fail(None, f"left after clear(): {', '.join(left)}")

    def _release_cluster(self) -> None:
        from .conftest import release_pool

        release_pool(self.pool)

    def check_runs(self, call: Call) -> None:
        """No item ran more than ``1 + retries`` times (a finished item never runs again).

        Not checked for a call a kill from outside hit: a worker killed after it finished
        an item but before its result left may cost that item a second run.
        """
        if call.runs is None or call.killed:
            return
        for name in os.listdir(call.runs):
            runs = os.path.getsize(os.path.join(call.runs, name))
            if runs > 1 + call.retries:
                self.fail(call, f"item {name} ran {runs} times (retries={call.retries})")


def _forked_child() -> None:
    """In a forked child: a process pool and a thread pool with default ids must work."""
    import traceback

    code = 1
    try:
        # A child that hangs prints where (every thread's stack) and exits by itself. Not
        # with faulthandler.dump_traceback_later: it first cancels the timer pytest set,
        # waiting for a watchdog thread that a forked child does not have (it hangs).
        signal.signal(signal.SIGALRM, _hung_child)
        signal.alarm(int(FORK_BOUND))
        for cls in (ThreadPool, ProcessPool):
            pool = cls(2)
            got = pool.map(_cases.square, range(4))
            pool.clear()
            if got != [0, 1, 4, 9]:
                print(f"forked child: {cls.__name__}(2).map gave {got!r}", flush=True)
                code = 3
                break
        else:
            code = 0
    except BaseException:
        traceback.print_exc()
        code = 2
    finally:
        os._exit(code)


def _start_helpers(kind: str) -> None:
    """Start multiprocessing's own helpers (one per process, kept by design) before the
    leak baseline: their pipes are not a pool's leak."""
    if kind in PROCESS_KINDS:
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()
    if kind == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def _forget_pools() -> None:
    """Clear the cached process and thread pools a failed example may have left (a nested
    pool with the default id would find a closed one and say so)."""
    from pathos.pools import _clear

    for cls in (ProcessPool, ThreadPool):
        with contextlib.suppress(Exception), bound("clearing pools left by an earlier example", 20):
            _clear(cls)


def _hung_child(signum: int, frame: Any) -> None:
    import faulthandler

    faulthandler.dump_traceback(all_threads=True)
    os._exit(1)


def machine_for(kind: str, max_items: int = 40) -> type[ChaosMachine]:
    """The chaos machine for one kind of pool."""
    return type(f"Chaos_{kind}", (ChaosMachine,), {"KIND": kind, "MAX_ITEMS": max_items})
