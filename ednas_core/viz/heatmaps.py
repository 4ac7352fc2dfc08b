"""Policy heatmaps (the paper's Figure 4): the softmax of every policy vector as a matrix with its values printed.

Edge (operation) policies: one row per edge of the full DAG labelled "src->dst", one column per operation.
Colours are normalised within the rows of the edges entering the same destination node (min -> bottom of the
colormap, max -> top; dark red = large, dark blue = small), as in the paper. Node (structure) policies: one row
per searched node, one column per input combination "(i,j)" (shared across rows; a combination a node cannot
pick is left blank), colours normalised within each row.

Input: the dict of PolicyVectors.probabilities() ('<cell>_node' [n_nodes, max_combos], '<cell>_edge'
[n_edges, n_ops]) or a policy_history.npz (the same keys prefixed 'prob_' with a leading epoch axis).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from ..spaces import CellSpace, SearchSpace
from ._common import combo_label, edge_label, new_figure, space_of

CMAP = "RdBu_r"


def _cmap():
    return colormaps[CMAP].with_extremes(bad="white")  # masked (impossible) entries stay blank


def normalise_groups(values: np.ndarray, groups: Sequence[int]) -> np.ndarray:
    """Min-max normalises `values` [rows, cols] within the rows sharing a group id (NaNs ignored): the largest
    value of a group maps to 1, the smallest to 0; a constant group (a node with one choice) maps to 1."""
    out = np.full(values.shape, np.nan)
    groups = np.asarray(groups)
    for g in np.unique(groups):
        rows = groups == g
        block = values[rows]
        lo, hi = np.nanmin(block), np.nanmax(block)
        out[rows] = (block - lo) / (hi - lo) if hi > lo else np.where(np.isnan(block), np.nan, 1.0)
    return out


def _annotate(ax: Axes, values: np.ndarray, colours: np.ndarray, fontsize: float) -> None:
    for (r, c), v in np.ndenumerate(values):
        if np.isnan(v):
            continue
        dark = abs(colours[r, c] - 0.5) > 0.3
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=fontsize,
                color="white" if dark else "black")


def _separators(ax: Axes, groups: Sequence[int], width: int) -> None:
    for r in range(1, len(groups)):
        if groups[r] != groups[r - 1]:
            ax.axhline(r - 0.5, color="black", linewidth=1.2)
    ax.set_xlim(-0.5, width - 0.5)


def edge_heatmap(ax: Axes, probs: np.ndarray, cell: CellSpace, title: str = "", annotate: bool = True,
                 fontsize: float = 7.5, xlabels: bool = True, ylabels: bool = True) -> None:
    """Draws one edge-policy matrix [n_edges, n_ops] on `ax` (image data = the per-destination normalised
    colours; the printed numbers are the probabilities)."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (cell.n_edges, len(cell.ops)):
        raise ValueError(f"edge policy has shape {probs.shape}; expected {(cell.n_edges, len(cell.ops))}")
    groups = [node for _, node in cell.edges]
    colours = normalise_groups(probs, groups)
    ax.imshow(colours, cmap=_cmap(), vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    if annotate:
        _annotate(ax, probs, colours, fontsize)
    _separators(ax, groups, len(cell.ops))
    ax.set_xticks(range(len(cell.ops)), cell.ops if xlabels else [""] * len(cell.ops), rotation=45, ha="right",
                  rotation_mode="anchor", fontsize=8)
    ax.set_yticks(range(cell.n_edges), [edge_label(p, n) for p, n in cell.edges] if ylabels else
                  [""] * cell.n_edges, fontsize=8)
    if xlabels:
        ax.set_xlabel("operation")
    if ylabels:
        ax.set_ylabel("edge (source->destination)")
    if title:
        ax.set_title(title, fontsize=10)


def node_matrix(probs: np.ndarray, cell: CellSpace) -> tuple[np.ma.MaskedArray, list[tuple[int, ...]]]:
    """Re-indexes node policies [n_nodes, max_combos] (each row in its own node's combination order) onto
    shared columns: every combination of the last node, which includes every earlier node's. Entries a node
    cannot pick are masked."""
    columns = list(cell.combos[-1])
    index = {c: k for k, c in enumerate(columns)}
    out = np.ma.masked_all((cell.n_nodes, len(columns)))
    for row, node_combos in enumerate(cell.combos):
        for k, combo in enumerate(node_combos):
            out[row, index[combo]] = probs[row, k]
    return out, columns


def node_heatmap(ax: Axes, probs: np.ndarray, cell: CellSpace, title: str = "", annotate: bool = True,
                 fontsize: float = 7.5) -> None:
    """Draws one structure-policy matrix: rows = searched nodes, columns = input combinations."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (cell.n_nodes, cell.max_combos):
        raise ValueError(f"node policy has shape {probs.shape}; expected {(cell.n_nodes, cell.max_combos)}")
    matrix, columns = node_matrix(probs, cell)
    values = matrix.filled(np.nan)
    colours = np.ma.masked_invalid(normalise_groups(values, range(cell.n_nodes)))
    ax.imshow(colours, cmap=_cmap(), vmin=0.0, vmax=1.0, aspect="auto", interpolation="nearest")
    if annotate:
        _annotate(ax, values, colours.filled(0.5), fontsize)
    ax.set_xticks(range(len(columns)), [combo_label(c) for c in columns], fontsize=8,
                  rotation=0 if cell.inputs_per_node == 1 else 45, ha="center" if cell.inputs_per_node == 1 else "right",
                  rotation_mode="anchor")
    ax.set_yticks(range(cell.n_nodes), [f"node {i}" for i in cell.node_ids], fontsize=8)
    ax.set_xlabel("input combination" if cell.inputs_per_node > 1 else "input node")
    ax.set_ylabel("searched node")
    if title:
        ax.set_title(title, fontsize=10)


def _strip(probabilities: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k.removeprefix("prob_"): np.asarray(v) for k, v in probabilities.items()
            if k.endswith(("_node", "_edge"))}


def policy_heatmaps(probabilities: Mapping[str, np.ndarray], space: SearchSpace | None = None,
                    epoch: int | None = None, annotate: bool = True,
                    title: str = "EDNAS policy vectors (softmax)") -> Figure:
    """All policy vectors of one moment: per cell type, the edge (operation) policy above the node (structure)
    policy. Axes titles: '<cell> cell: operation policy' / '<cell> cell: input policy'. `title`: what the
    numbers are (Strategy.distribution_title: a policy's softmax, a population's choice frequencies)."""
    probs = _strip(probabilities)
    space = space or space_of(probs)
    cell = space.cell
    n_types = len(space.cell_types)
    width = max(4.8, 0.62 * len(cell.ops) + 1.6, 0.55 * len(cell.combos[-1]) + 1.6)
    edge_h, node_h = 0.3 * cell.n_edges + 1.4, 0.32 * cell.n_nodes + 1.5
    fig = new_figure(width * n_types, edge_h + node_h + 0.6)
    grid = fig.add_gridspec(2, n_types, height_ratios=[edge_h, node_h])
    for col, t in enumerate(space.cell_types):
        edge_heatmap(fig.add_subplot(grid[0, col]), probs[f"{t}_edge"], cell, f"{t} cell: operation policy",
                     annotate)
        node_heatmap(fig.add_subplot(grid[1, col]), probs[f"{t}_node"], cell, f"{t} cell: input policy", annotate)
    when = f" at epoch {epoch}" if epoch is not None else ""
    fig.suptitle(f"{title}{when}\ncolours normalised per destination node", fontsize=11)
    return fig


def select_epochs(n_epochs: int, count: int = 6) -> list[int]:
    """`count` evenly spaced 0-based indices of n_epochs, first and last included (fewer for short runs)."""
    if n_epochs < 1:
        raise ValueError("no epochs to choose from")
    return sorted({int(round(x)) for x in np.linspace(0, n_epochs - 1, min(count, n_epochs))})


def policy_small_multiples(history: Mapping[str, np.ndarray], space: SearchSpace | None = None,
                           epochs: Sequence[int] | None = None, count: int = 6,
                           annotate: bool = True, title: str = "Operation policy over the search (softmax)") -> Figure:
    """Edge-policy heatmaps at `count` evenly spaced epochs: one row per cell type, one column per epoch.
    history: policy_history.npz arrays ('prob_<cell>_edge' [E, n_edges, n_ops], optional 'epoch' [E]);
    epochs: the 1-based epoch numbers of the E entries (default history['epoch'] or 1..E)."""
    probs = {k: v for k, v in _strip(history).items() if k.endswith("_edge")}
    space = space or space_of(probs)
    cell = space.cell
    n = len(probs[f"{space.cell_types[0]}_edge"])
    numbers = list(epochs) if epochs is not None else list(np.asarray(history.get("epoch", np.arange(1, n + 1))))
    chosen = select_epochs(n, count)
    panel_w = max(2.3, 0.36 * len(cell.ops) + 0.5)
    panel_h = 0.25 * cell.n_edges + 0.9
    fig = new_figure(panel_w * len(chosen) + 1.4, panel_h * len(space.cell_types) + 1.0)
    axes = fig.subplots(len(space.cell_types), len(chosen), squeeze=False)
    for r, t in enumerate(space.cell_types):
        for c, idx in enumerate(chosen):
            ax = axes[r][c]
            edge_heatmap(ax, probs[f"{t}_edge"][idx], cell, f"{t}, epoch {int(numbers[idx])}", annotate,
                         fontsize=5.5, xlabels=r == len(space.cell_types) - 1, ylabels=c == 0)
            if c:
                ax.set_ylabel("")
    fig.suptitle(f"{title}\ncolours normalised per destination node", fontsize=11)
    return fig
