"""Turn the raw rounds into ``results.md`` (medians, ratios, goals), ``results.json``
and ``results.png``.

Ratios read "ours vs X": how many times better ours is, so above 1 means ours wins.
For times that is X's time over ours; for speedups, ours over X's. Rounds are interleaved
(round r of every library runs before round r + 1 of any), so a ratio is taken within each
round, from the two libraries' figures of that round, and the median of those is shown;
results without per-round figures fall back to the ratio of the two medians.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
from pathlib import Path
from typing import Any, Optional

LABELS = {
    "ours": "ours",
    "pathos035": "pathos 0.3.5",
    "multiprocessing": "multiprocessing.Pool",
    "futures": "concurrent.futures",
    "loky": "loky",
    "joblib": "joblib",
    "mpire": "mpire",
}
# How each workload is shown: (title template, display unit, factor from the raw unit, higher is better).
SHOWN = {
    "tiny": ("{n_tiny:,} tiny tasks `x + 1`, default chunking", "ms", 1e3, False),
    "lambda": ("{n_tiny:,} tiny tasks, lambda closing over a local", "ms", 1e3, False),
    "chunk1": ("per-task overhead at chunksize=1 ({n_chunk1:,} tasks)", "µs/task", 1.0, False),
    "start": ("pool start to first result, imports done", "ms", 1e3, False),
    "start_cold": ("import, pool start and first result, fresh interpreter", "ms", 1e3, False),
    "import": ("import of the pool's module, fresh interpreter", "ms", 1e3, False),
    "cpu": ("CPU-bound speedup over serial ({n_cpu} x {task_ms:g} ms)", "x", 1.0, True),
    "np_args": ("{n_arrays} numpy arguments of {mb:g} MB", "ms", 1e3, False),
    "np_results": ("{n_arrays} numpy results of {mb:g} MB", "ms", 1e3, False),
    "np_args_cold": ("{n_arrays} numpy arguments of {mb:g} MB, a pool's first call with arrays", "ms", 1e3, False),
    "np_results_cold": ("{n_arrays} numpy results of {mb:g} MB, a pool's first call with arrays", "ms", 1e3, False),
}

Results = dict[str, dict[str, Any]]


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> Optional[float]:
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
    except (OSError, IndexError, ValueError):
        return None
    return round(kib / 2**20, 1)


def _commit() -> str:
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain", "src"], cwd=root, capture_output=True, text=True)
    except OSError:
        return "unknown"
    return head.stdout.strip() + (" (src modified)" if dirty.stdout.strip() else "")


def _versions(libs: list[str], results: Results) -> dict[str, str]:
    found: dict[str, str] = {}
    for by_lib in results.values():
        for lib, result in by_lib.items():
            if result.get("version") and lib not in found:
                found[lib] = result["version"]
    import importlib.metadata as md

    for extra in ("numpy", "dill"):
        try:
            found[extra] = md.version(extra)
        except md.PackageNotFoundError:
            pass
    return {k: found[k] for k in [*libs, "numpy", "dill"] if k in found}


def machine_meta(libs: list[str], results: Results, argv: list[str], seconds: float) -> dict[str, Any]:
    """Date, machine, Python and library versions: the header of every report."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "commit": _commit(),
        "versions": _versions(libs, results),
        "command": " ".join(["python benchmarks/run.py", *argv]),
        "seconds": round(seconds),
    }


def median(result: Optional[dict[str, Any]]) -> Optional[float]:
    """The median of a result's rounds, or None for a failure or a missing result."""
    if not result or result.get("error") or not result.get("values"):
        return None
    return float(statistics.median(result["values"]))


def ratio(workload: str, ours: Optional[float], peer: Optional[float]) -> Optional[float]:
    """How many times better ours is than the peer (above 1: ours wins)."""
    if ours is None or peer is None or ours <= 0 or peer <= 0:
        return None
    return ours / peer if SHOWN[workload][3] else peer / ours


def per_round(result: Optional[dict[str, Any]]) -> list[Optional[float]]:
    """Each round's figure (None where that round failed); empty for a failure or old results."""
    if not result or result.get("error"):
        return []
    return list(result.get("per_round") or [])


def paired_ratios(workload: str, ours: Optional[dict[str, Any]], peer: Optional[dict[str, Any]]) -> list[float]:
    """Ours vs the peer within each round where both have a figure, in round order."""
    pairs = zip(per_round(ours), per_round(peer))
    return [r for r in (ratio(workload, a, b) for a, b in pairs) if r is not None]


def ratio_of(workload: str, ours: Optional[dict[str, Any]], peer: Optional[dict[str, Any]]) -> Optional[float]:
    """The ratio shown: median of the per-round ratios, else the ratio of the medians."""
    paired = paired_ratios(workload, ours, peer)
    if paired:
        return float(statistics.median(paired))
    return ratio(workload, median(ours), median(peer))


def title(workload: str, params: dict[str, Any]) -> str:
    """The row title, with this run's sizes."""
    mb = params["array_size"] * 8 / 1e6
    return SHOWN[workload][0].format(mb=mb, **params)


def cell(workload: str, result: Optional[dict[str, Any]]) -> str:
    """A median with its unit, ``fails (Error)``, or a dash when not run."""
    if not result:
        return "-"
    if result.get("error"):
        return f"fails ({result['error']})"
    _, unit, factor, _ = SHOWN[workload]
    value = median(result)
    assert value is not None
    text = f"{value * factor:.3g} {unit}" if value * factor < 1000 else f"{value * factor:,.0f} {unit}"
    if result.get("n_used", result.get("n")) != result.get("n"):
        text += " †"
    return text


def fmt_ratio(value: Optional[float]) -> str:
    """``12.3x``, or a dash when a side is missing or failed."""
    if value is None:
        return "-"
    return f"{value:.3g}x" if value < 100 else f"{value:,.0f}x"
