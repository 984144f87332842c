"""A seeded random walk over a pool's lifecycle, checked against a model.

Each example draws a sequence of operations (calls, partial consumption of lazy calls,
close, terminate, restart, clear, timeouts, tasks raising ``SystemExit``) and checks, at
every step, the lifecycle contract of :mod:`tests.test_backend_contract`: every
operation returns within a bound; a result is right or ``PoolClosedError`` (only after
a ``terminate()`` since the call began, or for a call made on a closed pool); an ``imap``
begun before ``close()`` yields all of its items; a result seen complete is never
rewritten.

CI runs a few seeds per pool kind. A longer soak, printing each seed (replay one with
``PATHOS_CHAOS_SEED=<seed>``)::

    PATHOS_CHAOS_SECONDS=600 .venv/bin/python -m pytest tests/test_lifecycle_chaos.py -q -s \
        --timeout=0 -o faulthandler_timeout=0
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any, Iterator

import pytest

from pathos._errors import PoolClosedError, TaskTimeoutError

from . import _cases
from ._fake import FakePool
from .conftest import make_pool

T = 30  # seconds: any single operation past this is a hang
STEPS = 25
SEEDS = {"fake": 40, "serial": 8, "thread": 8, "process": 4}
_ids = itertools.count()


def new_pool(kind: str) -> Any:
    if kind == "fake":
        return FakePool(2, id=f"chaos-{next(_ids)}")
    return make_pool(kind)


def gen(n: int) -> Iterator[int]:
    yield from range(n)


def raise_exit(x: int) -> int:
    if x == 1:
        raise SystemExit(f"exit at {x}")
    return x


class Walk:
    """One example: a pool, the calls open on it, and what the model expects."""

    def __init__(self, kind: str, seed: int) -> None:
        self.kind = kind
        self.rng = random.Random(seed)
        self.pool = new_pool(kind)
        self.state = "RUN"  # the model's pool state: RUN, CLOSE, TERMINATE
        self.epoch = 0  # bumped by terminate(): calls from an earlier epoch may fail
        self.lazy: list[dict[str, Any]] = []  # open imaps
        self.done: list[tuple[Any, list[int]]] = []  # amap results seen complete, and their values

    # -- operations --------------------------------------------------------------------
    def op_map(self) -> None:
        xs = list(range(self.rng.randint(0, 30)))
        if self.state != "RUN":
            with pytest.raises(PoolClosedError):
                self.pool.map(_cases.square, xs)
            return
        assert self.pool.map(_cases.square, xs) == [x * x for x in xs]

    def op_amap(self) -> None:
        if self.state != "RUN":
            with pytest.raises(PoolClosedError):
                self.pool.amap(_cases.square, [1])
            return
        xs = list(range(self.rng.randint(1, 20)))
        result = self.pool.amap(_cases.square, xs)
        values = result.get(T)
        assert values == [x * x for x in xs]
        self.done.append((result, values))

    def op_imap(self) -> None:
        if self.state != "RUN":
            with pytest.raises(PoolClosedError):
                self.pool.imap(_cases.square, gen(3))
            return
        n = self.rng.randint(1, 80)
        it = self.pool.imap(_cases.square, gen(n))
        self.lazy.append({"it": it, "n": n, "got": 0, "epoch": self.epoch})
        self.op_consume(self.lazy[-1])

    def op_consume(self, call: dict[str, Any] | None = None) -> None:
        if call is None:
            if not self.lazy:
                return
            call = self.rng.choice(self.lazy)
        for _ in range(self.rng.randint(1, 40)):
            if not self._next(call):
                return

    def _next(self, call: dict[str, Any]) -> bool:
        """One result of an open imap, checked; False once it has ended."""
        try:
            value = call["it"].next(timeout=T)
        except StopIteration:
            assert call["got"] == call["n"], f"imap ended after {call['got']} of {call['n']} items"
            self.lazy.remove(call)
            return False
        except PoolClosedError:
            assert call["epoch"] < self.epoch, "PoolClosedError without a terminate() since the call began"
            self.lazy.remove(call)
            return False
        assert value == call["got"] ** 2
        call["got"] += 1
        return True

    def op_timeout(self) -> None:
        if self.kind == "fake" or self.state != "RUN":
            return
        it = self.pool.imap(_cases.sleep_then, [0.0, 1.5, 0.0], chunksize=3, timeout=0.5)
        assert it.next(timeout=T) == 0.0
        with pytest.raises(TaskTimeoutError, match=r"^item 1 "):
            it.next(timeout=T)
        assert it.next(timeout=T) == 0.0

    def op_system_exit(self) -> None:
        if self.kind == "fake" or self.state != "RUN":
            return
        with pytest.raises(SystemExit):
            self.pool.map(raise_exit, range(3))

    def op_close(self) -> None:
        live = self.pool._cached_backend() is not None  # pathos: close() of a pool never used (or cleared) does nothing
        self.pool.close()
        if self.state == "RUN" and live:
            self.state = "CLOSE"

    def op_terminate(self) -> None:
        live = self.pool._cached_backend() is not None
        self.pool.terminate()
        if live:
            self.state = "TERMINATE"
            self.epoch += 1

    def op_restart(self) -> None:
        if self.state == "RUN":
            return  # restart() of a running pool waits for its open calls, which may wait for us
        for call in list(self.lazy):
            self._finish(call)
        self.pool.restart()
        self.state = "RUN"

    def op_clear(self) -> None:
        if self.state == "RUN":
            return  # as restart()
        for call in list(self.lazy):
            self._finish(call)
        self.pool.clear()
        self.state = "RUN"

    def _finish(self, call: dict[str, Any]) -> None:
        while self._next(call):
            pass

    # -- the walk ------------------------------------------------------------------------
    OPS = {
        "op_map": 3,
        "op_amap": 2,
        "op_imap": 3,
        "op_consume": 4,
        "op_timeout": 1,
        "op_system_exit": 1,
        "op_close": 1,
        "op_terminate": 1,
        "op_restart": 1,
        "op_clear": 1,
    }

    def run(self, steps: int) -> None:
        names, weights = zip(*self.OPS.items())
        try:
            for _ in range(steps):
                name = self.rng.choices(names, weights)[0]
                started = time.monotonic()
                getattr(self, name)()
                assert time.monotonic() - started < 2 * T, f"{name} took too long"
                for result, values in self.done:  # nothing seen complete is rewritten
                    assert result.get(0) == values
            for call in list(self.lazy):  # every open call ends: all items, or closed by terminate
                self._finish(call)
        finally:
            self.pool.terminate()
            self.pool.clear()


def seeds(kind: str) -> list[int]:
    fixed = os.environ.get("PATHOS_CHAOS_SEED")
    if fixed:
        return [int(fixed)]
    return [1000 * i + len(kind) for i in range(SEEDS[kind])]


@pytest.mark.parametrize("kind", list(SEEDS))
def test_lifecycle_random_walk(kind: str) -> None:
    soak = float(os.environ.get("PATHOS_CHAOS_SECONDS", "0"))
    if soak:
        end, runs = time.monotonic() + soak, 0
        rng = random.Random()
        while time.monotonic() < end:
            seed = rng.randrange(1 << 30)
            print(f"chaos {kind} seed={seed}", flush=True)
            Walk(kind, seed).run(STEPS * 2)
            runs += 1
        print(f"chaos {kind}: {runs} walks of {STEPS * 2} steps in {soak:g} s, no failure")
        return
    for seed in seeds(kind):
        Walk(kind, seed).run(STEPS)
