"""``pathos bench``: a quick side-by-side of the serial, thread and process pools.

For each pool: the time from creating it to its first result, tiny tasks per second
(``x + 1``, automatic chunks), the per-task overhead at ``chunksize=1``, and the speedup
of a CPU-bound map over running it serially. A few seconds; ``--quick`` is shorter.
Figures on a shared machine are noisy: compare the pools with each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["Sizes", "run_bench"]


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    tiny: int = 100_000  # items of x + 1
    single: int = 5_000  # items at chunksize 1
    spin_seconds: float = 0.1  # length of one CPU-bound task

    @classmethod
    def quick(cls) -> Sizes:
        """Smaller sizes, for ``--quick`` (about a second)."""
        return cls(tiny=20_000, single=1_000, spin_seconds=0.03)


def _inc(x: int) -> int:
    return x + 1


def _spin(loops: int) -> int:
    total = 0
    for i in range(loops):
        total += i * i
    return total


def _calibrate(seconds: float) -> int:
    """Loops of :func:`_spin` that take about ``seconds`` here."""
    loops = 10_000
    while True:
        start = time.perf_counter()
        _spin(loops)
        took = time.perf_counter() - start
        if took > 0.01:
            return max(1, int(loops * seconds / took))
        loops *= 4


def _timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _measure(pool: Any, sizes: Sizes, loops: int, tasks: int) -> dict[str, float]:
    start_s = _timed(lambda: pool.map(_inc, [0]))
    tiny_s = _timed(lambda: pool.map(_inc, range(sizes.tiny)))
    single_s = _timed(lambda: pool.map(_inc, range(sizes.single), chunksize=1))
    cpu_s = _timed(lambda: pool.map(_spin, [loops] * tasks, chunksize=1))
    return {
        "start": start_s * 1e3,
        "tiny": sizes.tiny / tiny_s,
        "overhead": single_s / sizes.single * 1e6,
        "cpu": cpu_s,
    }


def _pools(nodes: int) -> list[tuple[str, Any]]:
    from .pools import ProcessPool, SerialPool, ThreadPool

    return [
        ("serial", SerialPool()),
        ("thread", ThreadPool(nodes, id="pathos-bench")),
        ("process", ProcessPool(nodes, id="pathos-bench")),
    ]


def run_bench(nodes: int, sizes: Sizes, write: Callable[[str], None] = print) -> list[dict[str, Any]]:
    """Measure every pool with ``nodes`` workers; write a table; return its rows."""
    loops = _calibrate(sizes.spin_seconds)
    tasks = 2 * nodes
    rows = []
    for name, pool in _pools(nodes):
        with pool:
            row: dict[str, Any] = {"pool": name, **_measure(pool, sizes, loops, tasks)}
        rows.append(row)
    serial_cpu = rows[0]["cpu"]
    for row in rows:
        row["speedup"] = serial_cpu / row.pop("cpu")
    write(f"{nodes} workers; {tasks} CPU-bound tasks of ~{sizes.spin_seconds * 1e3:.0f} ms")
    write(f"{'pool':<8} {'start ms':>9} {'tiny tasks/s':>13} {'us/task at chunksize 1':>23} {'cpu speedup':>12}")
    for row in rows:
        write(
            f"{row['pool']:<8} {row['start']:>9.1f} {row['tiny']:>13,.0f} "
            f"{row['overhead']:>23.1f} {row['speedup']:>11.2f}x"
        )
    return rows
