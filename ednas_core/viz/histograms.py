"""Cumulative sampling histograms (the paper's Figure 5): how often each edge of the DAG and each operation was
sampled, per window of epochs, as stacked bars of shares (each bar sums to 1).

Input: the per-epoch sampling counts recorded during the search ('counts_<cell>' [epochs, n_edges, n_ops] in
policy_history.npz, or the same arrays keyed by cell type). Edge counts are the sum over operations, operation
counts the sum over edges.

Colour here names an edge or an operation (a categorical palette, with a legend), never a value: the shares are
read off the bars' heights on the 0-1 y axis, so these figures need no colour bar (heatmaps.py explains the
heatmaps' value scale).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..spaces import SearchSpace
from ._common import cell_name, edge_label, new_figure, space_of


def default_window(epochs: int) -> int:
    """The paper's 50 epochs, smaller for short runs so there are about 5 windows (at least 3 when possible)."""
    return min(50, max(1, math.ceil(epochs / 5)))


def window_bounds(epochs: int, window: int) -> list[tuple[int, int]]:
    """(start, stop) 0-based half-open index ranges of consecutive windows; the last one may be shorter."""
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    return [(s, min(s + window, epochs)) for s in range(0, epochs, window)]


def windowed_shares(counts: np.ndarray, window: int, axis: str) -> np.ndarray:
    """counts [E, n_edges, n_ops] -> shares [n_windows, n_edges or n_ops]: per window, the fraction of the
    sampled (edge, op) pairs that used each edge (axis='edge') or each op (axis='op')."""
    counts = np.asarray(counts, dtype=float)
    reduced = counts.sum(axis=2) if axis == "edge" else counts.sum(axis=1)
    out = []
    for start, stop in window_bounds(len(counts), window):
        total = reduced[start:stop].sum(axis=0)
        out.append(total / total.sum() if total.sum() > 0 else total)
    return np.array(out)


def _colours(n: int) -> list:
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:
        return [colormaps["tab20"](i) for i in range(n)]
    return [colormaps["turbo"](x) for x in np.linspace(0.05, 0.95, n)]


def _stacked(ax: Axes, shares: np.ndarray, labels: Sequence[str], window_labels: Sequence[str], title: str,
             what: str) -> None:
    bottom = np.zeros(len(shares))
    x = np.arange(len(shares))
    for k, (label, colour) in enumerate(zip(labels, _colours(len(labels)))):
        ax.bar(x, shares[:, k], bottom=bottom, color=colour, label=label, width=0.8, edgecolor="white",
               linewidth=0.4)
        bottom += shares[:, k]
    ax.set_xticks(x, window_labels, rotation=30 if len(x) > 6 else 0, ha="right" if len(x) > 6 else "center",
                  fontsize=8)
    ax.set_xlim(-0.6, len(x) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_xlabel("epochs")
    ax.set_ylabel(f"share of sampled {what}")
    ax.set_title(title, fontsize=10)
    ncol = 1 if len(labels) <= 16 else 2
    ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), fontsize=7, ncol=ncol, frameon=False,
              reverse=True, handlelength=1.0, columnspacing=0.8)


def sampling_histograms(counts: Mapping[str, np.ndarray], space: SearchSpace | None = None,
                        window: int | None = None, epochs: Sequence[int] | None = None) -> Figure:
    """Stacked shares of sampled edges and operations per window of epochs: panels 'edges (<cell>)' in the top
    row and 'operations (<cell>)' in the bottom row, one column per cell type (CNN: normal, reduce).
    counts: '<cell>' or 'counts_<cell>' -> [E, n_edges, n_ops]; epochs: 1-based numbers of the E entries."""
    arrays = {k.removeprefix("counts_"): np.asarray(v) for k, v in counts.items() if k.startswith("counts_")}
    arrays = arrays or {k: np.asarray(v) for k, v in counts.items()}
    space = space or space_of(arrays)
    cell = space.cell
    n = len(arrays[space.cell_types[0]])
    window = window or default_window(n)
    numbers = list(epochs) if epochs is not None else list(range(1, n + 1))
    bounds = window_bounds(n, window)
    window_labels = [f"{numbers[a]}" if b - a == 1 else f"{numbers[a]}-{numbers[b - 1]}" for a, b in bounds]
    edge_labels = [edge_label(p, node) for p, node in cell.edges]
    n_types = len(space.cell_types)
    width_per = max(5.0, 0.5 * len(bounds) + 3.2 + (1.0 if cell.n_edges > 16 else 0.0))
    height_edges = max(3.6, 0.12 * cell.n_edges + 1.5) if cell.n_edges > 16 else 3.6
    fig = new_figure(width_per * n_types, height_edges + 3.4)
    grid = fig.add_gridspec(2, n_types, height_ratios=[height_edges, 3.4])
    for col, t in enumerate(space.cell_types):
        _stacked(fig.add_subplot(grid[0, col]), windowed_shares(arrays[t], window, "edge"), edge_labels,
                 window_labels, f"edges sampled ({cell_name(t)})", "edges")
        _stacked(fig.add_subplot(grid[1, col]), windowed_shares(arrays[t], window, "op"), list(cell.ops),
                 window_labels, f"operations sampled ({cell_name(t)})", "operations")
    fig.suptitle(f"Cumulative sampling histograms per {window}-epoch window", fontsize=11)
    return fig
