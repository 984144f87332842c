"""A long run of the chaos suite: ``python -m tests.chaos_soak --minutes 30``.

Runs the chaos machine (tests/_chaos.py) round after round, cycling through the pool
kinds, each round with its own seed drawn from the run's seed, until the time is up (the
round running then finishes). Prints each round's kind, seed, operations and time, and
at the end the operations run, the seeds, the failures and the wall time. A failed
round prints Hypothesis's steps and the command that replays it
(``--replay SEED --kinds KIND``). Exit status: 0 when no round failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback
from collections import Counter

from . import _chaos
from .test_chaos import run_chaos


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.chaos_soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    parser.add_argument("--seed", type=int, default=None, help="the run's seed (default: a random one)")
    parser.add_argument("--replay", type=int, default=None, help="run one round with this round seed")
    every = ",".join(_chaos.KINDS)
    parser.add_argument("--kinds", default=every, help=f"comma-separated pool kinds (default: {every})")
    parser.add_argument("--profile", default="soak", help="Hypothesis settings profile: soak (default), ci, shrink")
    parser.add_argument("--stop", action="store_true", help="stop at the first failed round")
    return parser.parse_args(argv)


def _round(kind: str, seed: int, profile: str, totals: Counter[str]) -> str | None:
    """One round; the failure's report, or None."""
    _chaos.STATS.clear()
    started = time.monotonic()
    failure = None
    try:
        run_chaos(kind, seed, profile)
    except Exception:
        failure = traceback.format_exc(limit=-3)
    ops = sum(_chaos.STATS.values())
    totals.update(_chaos.STATS)
    status = "ok" if failure is None else "FAILED"
    print(f"  {kind:<10} seed={seed:<10} {ops:>5} operations {time.monotonic() - started:7.1f} s  {status}", flush=True)
    return failure


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    kinds = [k for k in args.kinds.split(",") if k]
    unknown = [k for k in kinds if k not in _chaos.KINDS]
    if unknown:
        raise SystemExit(f"unknown kinds {unknown}; choose from {list(_chaos.KINDS)}")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 32)
    rng = random.Random(seed)
    totals: Counter[str] = Counter()
    failures: list[tuple[str, int, str]] = []
    seeds: list[tuple[str, int]] = []
    started = time.monotonic()
    deadline = started + 60 * args.minutes
    print(f"chaos soak: seed={seed} kinds={','.join(kinds)} profile={args.profile} minutes={args.minutes:g}")
    rounds = 0
    try:
        while True:
            kind = kinds[rounds % len(kinds)]
            round_seed = args.replay if args.replay is not None else rng.randrange(1 << 32)
            seeds.append((kind, round_seed))
            failure = _round(kind, round_seed, args.profile, totals)
            rounds += 1
            if failure is not None:
                failures.append((kind, round_seed, failure))
                print(failure, file=sys.stderr, flush=True)
                print(f"  replay: python -m tests.chaos_soak --replay {round_seed} --kinds {kind}", flush=True)
            if args.replay is not None and rounds >= len(kinds):
                break
            if (failure is not None and args.stop) or time.monotonic() >= deadline:
                break
    finally:
        _end_shared_cluster()
    wall = time.monotonic() - started
    print(f"\nchaos soak done: seed={seed}, {rounds} rounds, {sum(totals.values())} operations in {wall:.0f} s wall")
    print(f"operations: {dict(totals.most_common())}")
    print(f"round seeds: {' '.join(f'{k}:{s}' for k, s in seeds)}")
    print(f"failures: {len(failures)}" + "".join(f"\n  {k} seed={s}" for k, s, _ in failures))
    return 1 if failures else 0


def _end_shared_cluster() -> None:
    from pathos.pools import ParallelPool

    backend = ParallelPool.__state__.pop(_chaos.SHARED_PARALLEL_ID, None)
    if backend is not None:
        backend.terminate()


if __name__ == "__main__":
    sys.exit(main())
