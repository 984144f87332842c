"""``pathos bench``: a quick side-by-side of the serial, thread and process pools.

For each pool: the time from creating it to its first result, tiny tasks per second
(``x + 1``, automatic chunks), the per-task overhead at ``chunksize=1``, and the speedup
of a CPU-bound map over running it serially. Each figure is measured in several rounds,
interleaved across the pools (round 1 of every pool, then round 2, ...), so a burst of
load lands on all of them; the table shows each figure's median and its spread
(min-max over rounds). The machine's load is printed beside it, with a warning when
other programs compete for the cores, and a speedup that no worker count could give
is flagged: it means the serial reference was slowed, not that the pool is that fast.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

__all__ = ["DEFAULT_ROUNDS", "Sizes", "Spread", "machine_load", "run_bench"]

DEFAULT_ROUNDS = 5
BUSY = 0.5  # a 1-minute load average above this share of the cores, before we start, is "loaded"


@dataclass(frozen=True)
class Sizes:
    """How much work each measurement does."""

    tiny: int = 100_000  # items of x + 1
    single: int = 5_000  # items at chunksize 1
    spin_seconds: float = 0.1  # length of one CPU-bound task

    @classmethod
    def quick(cls) -> Sizes:
        """Smaller sizes, for ``--quick`` (about half a second a round)."""
        return cls(tiny=20_000, single=1_000, spin_seconds=0.03)


@dataclass(frozen=True)
class Spread:
    """One figure over rounds: its median, lowest and highest value."""

    median: float
    low: float
    high: float

    @classmethod
    def of(cls, values: list[float]) -> Spread:
        """The spread of ``values`` (at least one)."""
        return cls(statistics.median(values), min(values), max(values))

    def format(self, show: Callable[[float], str]) -> str:
        """``median (low-high)``, each written by ``show``; the median alone when they agree."""
        median, low, high = show(self.median), show(self.low), show(self.high)
        return median if low == high else f"{median} ({low}-{high})"


def _fixed(digits: int, suffix: str = "") -> Callable[[float], str]:
    return lambda value: f"{value:.{digits}f}{suffix}"


def _count(value: float) -> str:
    """A rate in a few digits: 950, 12.3k, 4.56M."""
    for scale, unit in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{unit}"
    return f"{value:.0f}"


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


POOLS = ("serial", "thread", "process")


def _pool(name: str, nodes: int) -> Any:
    """A fresh pool (a round measures its start too)."""
    from .pools import ProcessPool, SerialPool, ThreadPool

    if name == "serial":
        return SerialPool()
    return (ThreadPool if name == "thread" else ProcessPool)(nodes, id="pathos-bench")


def machine_load() -> tuple[float | None, int]:
    """The 1-minute load average (None where the OS has none) and the usable cores."""
    from ._config import cpu_count

    try:
        load: float | None = os.getloadavg()[0]
    except (AttributeError, OSError):  # Windows
        load = None
    return load, cpu_count()


def _rounds(nodes: int, sizes: Sizes, rounds: int, loops: int) -> dict[str, list[dict[str, float]]]:
    """Every round of every pool, interleaved; the pool order rotates by one each round."""
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in POOLS}
    for r in range(rounds):
        k = r % len(POOLS)
        for name in POOLS[k:] + POOLS[:k]:
            with _pool(name, nodes) as pool:
                runs[name].append(_measure(pool, sizes, loops, 2 * nodes))
    # A speedup pairs each round with the serial run of the same round.
    for name in POOLS:
        for mine, serial in zip(runs[name], runs["serial"]):
            mine["speedup"] = serial["cpu"] / mine["cpu"]
    return runs


def run_bench(
    nodes: int, sizes: Sizes, write: Callable[[str], None] = print, *, rounds: int = DEFAULT_ROUNDS
) -> list[dict[str, Any]]:
    """Measure every pool with ``nodes`` workers over ``rounds`` rounds; write a table.

    Returns:
        One row per pool: ``pool``, and a :class:`Spread` for ``start`` (ms), ``tiny``
        (tasks/s), ``overhead`` (µs/task at chunksize 1) and ``speedup``; ``impossible``:
        in how many rounds the speedup came out above what ``nodes`` workers on this
        machine's cores can give (flagged with ``!``).
    """
    load_before, cores = machine_load()
    write(_load_line("load before", load_before, cores))
    loops = _calibrate(sizes.spin_seconds)
    started = time.perf_counter()
    runs = _rounds(nodes, sizes, rounds, loops)
    ceiling = min(nodes, cores)
    rows = []
    for name in POOLS:
        row: dict[str, Any] = {"pool": name, "rounds": runs[name]}
        for key in ("start", "tiny", "overhead", "speedup"):
            row[key] = Spread.of([run[key] for run in runs[name]])
        row["impossible"] = sum(run["speedup"] > ceiling for run in runs[name]) if name != "serial" else 0
        rows.append(row)
    took = time.perf_counter() - started
    write(f"{nodes} workers, {cores} usable cores; {2 * nodes} CPU-bound tasks of ~{sizes.spin_seconds * 1e3:.0f} ms")
    write(f"{rounds} rounds interleaved across pools in {took:.1f} s; each figure: median (min-max over rounds)")
    _table(rows, write)
    write(_load_line("load after", machine_load()[0], cores))
    _warnings(rows, load_before, cores, ceiling, write)
    return rows


def _load_line(label: str, load: float | None, cores: int) -> str:
    shown = "unknown" if load is None else f"{load:.2f}"
    return f"{label}: {shown} (1-minute average) on {cores} usable cores ({os.cpu_count()} in the machine)"


def _table(rows: list[dict[str, Any]], write: Callable[[str], None]) -> None:
    write(f"{'pool':<8} {'start ms':>16} {'tiny tasks/s':>20} {'us/task at chunksize 1':>24} {'cpu speedup':>22}")
    for row in rows:
        flag = " !" if row["impossible"] else ""
        write(
            f"{row['pool']:<8} {row['start'].format(_fixed(1)):>16} {row['tiny'].format(_count):>20} "
            f"{row['overhead'].format(_fixed(1)):>24} {row['speedup'].format(_fixed(2, 'x')) + flag:>22}"
        )


def _warnings(
    rows: list[dict[str, Any]], load: float | None, cores: int, ceiling: int, write: Callable[[str], None]
) -> None:
    if load is not None and load > BUSY * cores:
        write(
            f"warning: the machine was loaded (load {load:.2f} on {cores} cores) before the run: "
            "other programs competed for the cores, so these figures are noisy and speedups low. "
            "Compare the pools with each other, or rerun when the load is low."
        )
    for row in rows:
        if row["impossible"]:
            rounds, top = len(row["rounds"]), row["speedup"].high
            write(
                f"warning: ! the {row['pool']} pool's speedup came out above what {ceiling} workers can give "
                f"({ceiling}x) in {row['impossible']} of {rounds} rounds (up to {top:.2f}x): "
                "the serial reference of those rounds was slowed by load. That is noise, not a figure to trust; "
                "rerun when the load is low."
            )
