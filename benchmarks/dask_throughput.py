"""Items per second of ParallelPool on a local Dask cluster of two worker processes.

Tiny items (``x + 1``) measure the per-item overhead end to end: batching, serializing,
the Dask round trips and rebuilding the results. Run from the repository root::

    python benchmarks/dask_throughput.py [items] [repeats]

It prints the best of ``repeats`` runs of ``map``, ``imap`` and ``uimap``, and, for
reference, ProcessPool on two workers in the same run (absolute figures vary with the
machine; compare the ratios).
"""

from __future__ import annotations

import sys
import time
from typing import Any, Callable

from pathos.pools import ParallelPool, ProcessPool


def best_rate(run: Callable[[], Any], items: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return items / best


def measure(pool: Any, name: str, items: int, repeats: int) -> None:
    xs = range(items)
    pool.map(lambda x: x + 1, range(1000))  # start the workers before timing
    for verb, run in (
        ("map", lambda: pool.map(lambda x: x + 1, xs)),
        ("imap", lambda: sum(1 for _ in pool.imap(lambda x: x + 1, xs))),
        ("uimap", lambda: sum(1 for _ in pool.uimap(lambda x: x + 1, xs))),
    ):
        print(f"{name:<26} {verb:<6} {best_rate(run, items, repeats):>12,.0f} items/s", flush=True)


def main() -> None:
    items = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    repeats = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    print(f"{items:,} tiny items (x + 1), best of {repeats}")
    start = time.perf_counter()
    dask_pool = ParallelPool(nodes=2, id="bench-dask")
    dask_pool.map(abs, [1])
    print(f"local Dask cluster started in {time.perf_counter() - start:.2f} s")
    try:
        measure(dask_pool, "ParallelPool (Dask, 2)", items, repeats)
    finally:
        dask_pool.clear()
    process_pool = ProcessPool(nodes=2, id="bench-process")
    try:
        measure(process_pool, "ProcessPool (2)", items, repeats)
    finally:
        process_pool.clear()


if __name__ == "__main__":
    main()
