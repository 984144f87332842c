"""The randomized chaos suite (issue 9): Hypothesis drives every verb and lifecycle call
on each kind of pool and checks the promises of the README's "Failures and timeouts"
(see ``tests/_chaos.py`` for the rules and invariants).

Profiles: ``ci`` (the default, a bounded number of examples) and ``soak`` (many more);
pick one with ``PATHOS_CHAOS_PROFILE``. Every run prints its seed; replay a run with
``PATHOS_CHAOS_SEED=<seed> pytest tests/test_chaos.py``. Long runs: ``scripts/soak.sh``.
"""

from __future__ import annotations

import os
import random
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as use_seed
from hypothesis.stateful import run_state_machine_as_test

from . import _chaos
from .conftest import HAVE_DASK

settings.register_profile(
    "ci",
    max_examples=10,
    stateful_step_count=12,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),  # no shrinking: a hang would cost a bound per try
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
settings.register_profile(
    "soak",
    max_examples=40,
    stateful_step_count=30,
    deadline=None,
    database=None,
    phases=(Phase.explicit, Phase.generate),
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
settings.register_profile(
    "shrink",  # to minimise a failure found with a seed: slower, but the steps printed are few
    parent=settings.get_profile("soak"),
    phases=(Phase.explicit, Phase.generate, Phase.shrink),
)

# Fewer examples where a pool costs seconds to start (spawn, a Dask cluster).
SCALE = {"serial": 1.0, "thread": 1.0, "fork": 1.0, "spawn": 0.5, "forkserver": 0.7, "parallel": 0.3}
# The engine rebuild of issue 9 (branches core, job, proc, dask) fixes what this suite
# finds on the engine it started from (see tests/test_chaos_regressions.py). Until all
# of them are merged the suite may fail; whoever merges the last one sets this to True,
# and from then on every failure fails the build.
ENGINE_REBUILT = True


def _marks(kind: str) -> list[Any]:
    marks: list[Any] = []
    if kind == "parallel":
        marks += [pytest.mark.dask, pytest.mark.skipif(not HAVE_DASK, reason="needs pathos[dask]")]
    if not ENGINE_REBUILT:
        marks.append(pytest.mark.xfail(strict=False, reason="issue 9: fixed by the engine branches, not yet merged"))
    return marks


KINDS = [pytest.param(k, marks=_marks(k)) for k in _chaos.KINDS]


def chaos_settings(kind: str, profile: str | None = None) -> settings:
    base = settings.get_profile(profile or os.environ.get("PATHOS_CHAOS_PROFILE", "ci"))
    return settings(base, max_examples=max(1, int(base.max_examples * SCALE[kind])))


def run_chaos(kind: str, seed: int, profile: str | None = None) -> None:
    """Run the chaos machine for ``kind`` with ``seed``; raises on the first failure."""

    def factory() -> _chaos.ChaosMachine:
        return _chaos.machine_for(kind)()

    use_seed(seed)(factory)
    try:
        run_state_machine_as_test(factory, settings=chaos_settings(kind, profile))
    except BaseException as exc:
        if hasattr(exc, "add_note"):
            exc.add_note(f"chaos kind={kind} seed={seed}: replay with PATHOS_CHAOS_SEED={seed}")
        raise


def run_seed() -> int:
    given = os.environ.get("PATHOS_CHAOS_SEED")
    return int(given) if given else random.SystemRandom().randrange(1 << 32)


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_chaos(kind: str) -> None:
    seed = run_seed()
    replay = f"PATHOS_CHAOS_SEED={seed} pytest 'tests/test_chaos.py::test_chaos[{kind}]'"
    print(f"chaos kind={kind} seed={seed} (replay: {replay})")
    _chaos.STATS.clear()
    try:
        run_chaos(kind, seed)
    finally:
        print(f"chaos kind={kind} operations: {sum(_chaos.STATS.values())} {dict(_chaos.STATS)}")
