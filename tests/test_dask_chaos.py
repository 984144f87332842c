"""The lifecycle random walk of :mod:`tests.test_lifecycle_chaos`, on ParallelPool.

Each walk runs on a pool connected to a real Dask scheduler with two workers on
127.0.0.1 (started once for this module), so ``restart()`` and ``clear()`` reconnect
in milliseconds instead of starting a local cluster. The model and its checks are the
ones every other pool kind is held to. A longer soak, printing each seed (replay one
with ``PATHOS_CHAOS_SEED=<seed>``)::

    PATHOS_CHAOS_SECONDS=600 .venv/bin/python -m pytest tests/test_dask_chaos.py -q -s \
        --timeout 0 -o faulthandler_timeout=0

(without the last two options pytest-timeout stops any test at 180 s, and the
faulthandler prints every thread's stack at 120 s: a soak is not a hang).
"""

from __future__ import annotations

import os
import random
import threading
import time
from typing import Any, Iterator

import pytest

from . import test_lifecycle_chaos as chaos
from .test_dask import Cluster, remote_pool

pytest.importorskip("distributed")

pytestmark = pytest.mark.dask

WALKS = 6  # seeds per CI run
STEPS = 50  # operations per walk (a walk takes well under a second)


class DaskWalk(chaos.Walk):
    """The walk, plus ``join()`` on a closed pool: the point where the engine has gone
    idle, which an ``imap`` begun before ``close()`` must outlive."""

    OPS = {**chaos.Walk.OPS, "op_join": 2}

    def op_join(self) -> None:
        if self.state == "RUN":
            return  # join() of a running pool raises (pathos's contract, tested elsewhere)
        done = threading.Event()

        def join() -> None:
            self.pool.join()
            done.set()

        threading.Thread(target=join, daemon=True).start()
        assert done.wait(chaos.T), "join() did not return"


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(workers=2)
    yield c
    c.stop()


def test_parallel_pool_lifecycle_random_walk(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    def new_pool(kind: str) -> Any:
        return remote_pool(cluster.address)

    monkeypatch.setattr(chaos, "new_pool", new_pool)
    soak = float(os.environ.get("PATHOS_CHAOS_SECONDS", "0"))
    fixed = os.environ.get("PATHOS_CHAOS_SEED")
    if soak and not fixed:
        end, runs, rng = time.monotonic() + soak, 0, random.Random()
        while time.monotonic() < end:
            seed = rng.randrange(1 << 30)
            print(f"chaos parallel seed={seed}", flush=True)
            DaskWalk("parallel", seed).run(STEPS)
            runs += 1
        print(f"chaos parallel: {runs} walks of {STEPS} steps in {soak:g} s, no failure")
        return
    for seed in [int(fixed)] if fixed else [1000 * i + 8 for i in range(WALKS)]:
        DaskWalk("parallel", seed).run(STEPS)
