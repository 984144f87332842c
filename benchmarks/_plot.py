"""``results.png``: ours vs each peer per workload (log scale), and the scaling run."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any, Optional

import matplotlib

matplotlib.use("Agg")  # files only; no display needed

import matplotlib.pyplot as plt
from _report import LABELS, SHOWN, Results, median, ratio_of, title


def _ratio_bars(ax: Any, params: dict[str, Any], results: Results) -> None:
    workloads = [w for w in SHOWN if w in results and median(results[w].get("ours")) is not None]
    peers = [lib for lib in LABELS if lib != "ours" and any(lib in results[w] for w in workloads)]
    height = 0.8 / max(1, len(peers))
    for i, peer in enumerate(peers):
        ys, xs = [], []
        for row, w in enumerate(workloads):
            value = ratio_of(w, results[w].get("ours"), results[w].get(peer))
            if value is not None:
                ys.append(row + i * height)
                xs.append(value)
        ax.barh(ys, xs, height=height, label=LABELS[peer])
    ax.set_yticks([row + 0.4 - height / 2 for row in range(len(workloads))])
    ax.set_yticklabels([title(w, params).replace("`", "") for w in workloads], fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1, color="black", linewidth=1)
    ax.set_xlabel("ours vs peer (x better, log scale; missing bar: peer fails)")
    ax.legend(fontsize=7, loc="lower right")


def _scaling_lines(ax: Any, params: dict[str, Any], results: Results) -> None:
    nodes = params["scaling_nodes"]
    for lib, result in results.get("scaling", {}).items():
        by_nodes = result.get("by_nodes") or {}
        points = [(k, statistics.median(by_nodes[str(k)])) for k in nodes if by_nodes.get(str(k))]
        if points:
            ax.plot(*zip(*points), marker="o", label=LABELS[lib])
    ax.plot(nodes, nodes, linestyle="--", color="grey", label="ideal")
    ax.set_xlabel("workers")
    ax.set_ylabel("CPU-bound speedup over serial")
    ax.set_xticks(nodes)
    ax.legend(fontsize=7)


def plot(path: Path, params: dict[str, Any], results: Results) -> Optional[Path]:
    """Draw both panels into ``path``; None when there is nothing to draw."""
    if not any(w in results for w in SHOWN) and "scaling" not in results:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [2.2, 1]})
    _ratio_bars(left, params, results)
    _scaling_lines(right, params, results)
    fig.suptitle(f"pathos (ours) vs peers, {params['nodes']} workers, medians of {params['rounds']} interleaved rounds")
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp")
    fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    tmp.replace(path)
    return path
