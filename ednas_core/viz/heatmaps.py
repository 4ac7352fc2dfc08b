"""Policy heatmaps (the paper's Figure 4): the softmax of every policy vector as a matrix with its values printed.

Edge (operation) policies: one row per edge of the full DAG labelled "src->dst", one column per operation; the
rows of the edges entering one destination node are grouped between black lines. Node (structure) policies: one
row per searched node, one column per input combination "(i,j)" (shared across rows); on an any-subset cell
(NAS-Bench-201) one column per subset of inputs, "()" for none (every incoming edge `none`), "0", "(0,1)", ...

Colour scale: the probability itself, on one fixed linear scale from 0 to 1 (viridis), the same in every panel,
figure and epoch (the report's figures and the MLflow artifacts alike), always drawn with a colour bar on which
the uniform value of the vectors shown ("no preference") is marked. A colour therefore means one probability
everywhere: a cell's colour is a function of its value only. We chose absolute probabilities over the deviation
from uniform because the vectors do not share one uniform value: an edge's operation vector has 1/n_ops, but node
k's input vector has 1/(its number of valid combinations) (CNN cell: 1, 1/3, 1/6, 1/10), so on a deviation
scale the same probability would take different colours in different rows, and 0.2 would look "strong" in one
row and "weak" in the next. On the absolute scale, a nearly uniform policy honestly looks flat (every cell the
colour of its uniform value, marked on the colour bar), where the paper's min-max normalisation per destination
node (used here before) painted cells reading 0.13-0.16 deep red and deep blue, and saturated a policy still
exactly uniform. The node rows are labelled with their uniform value too. Combinations a node cannot pick (the
padding of its shorter vector) are transparent over a hatched background: blank, never the colour of 0.

Input: the dict of PolicyVectors.probabilities() ('<cell>_node' [n_nodes, max_combos], '<cell>_edge'
[n_edges, n_ops]) or a policy_history.npz (the same keys prefixed 'prob_' with a leading epoch axis).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.colorbar import Colorbar
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.image import AxesImage

from ..spaces import CellSpace, SearchSpace
from ._common import cell_name, combo_label, edge_label, new_figure, space_of

CMAP = "viridis"   # perceptually uniform, readable in grey and by colour-blind readers; no white end (white = blank)
NORM = Normalize(vmin=0.0, vmax=1.0, clip=True)  # fixed: never rescaled to the data shown
BLANK_HATCH = "////"
BLANK_HATCH_COLOUR = "#c4c4c4"
UNIFORM_LINE = "#ff3b30"  # the uniform values on the colour bar: a colour viridis does not contain


def _cmap():
    return colormaps[CMAP].with_extremes(bad=(0.0, 0.0, 0.0, 0.0))  # masked (impossible) entries: transparent


def colour_of(value: float | np.ndarray) -> np.ndarray:
    """The RGBA colour every heatmap gives `value` (a probability): the same in every panel and figure."""
    return _cmap()(NORM(value))


def _fraction(count: int) -> str:
    return "1" if count == 1 else f"1/{count}"


def _image(ax: Axes, values: np.ndarray) -> AxesImage:
    """The values themselves as the image data, on the fixed scale; NaN / masked entries left blank (hatched)."""
    ax.set_facecolor("white")
    ax.patch.set_hatch(BLANK_HATCH)
    if hasattr(ax.patch, "set_hatchcolor"):  # matplotlib >= 3.11; before, the hatch takes the edge colour
        ax.patch.set_hatchcolor(BLANK_HATCH_COLOUR)
    else:
        ax.patch.set_edgecolor(BLANK_HATCH_COLOUR)
    return ax.imshow(np.ma.masked_invalid(values), cmap=_cmap(), norm=NORM, aspect="auto", interpolation="nearest")


def colour_bar(fig: Figure, image: AxesImage, axes: Axes | Sequence[Axes], uniform: Mapping[float, str],
               label: str = "probability") -> Colorbar:
    """A colour bar for `image` beside `axes`: the scale's ticks on its left, a red line across it at every
    uniform value with its label on the right ('uniform 1/7'; a label closer than about 8 points to the one
    above it is left off, its line stays), then the bar's label."""
    boxes = [ax.get_position() for ax in ([axes] if isinstance(axes, Axes) else axes)]
    span_in = (max(b.y1 for b in boxes) - min(b.y0 for b in boxes)) * fig.get_figheight()
    bar = fig.colorbar(image, ax=axes, pad=0.02, fraction=0.05, aspect=max(8.0, span_in / 0.22))  # 0.22 in wide
    bar.set_ticks(np.linspace(0.0, 1.0, 6))
    bar.ax.yaxis.set_ticks_position("left")
    bar.ax.tick_params(labelsize=7)
    labelled: list[float] = []
    height_in = bar.ax.get_position().height * fig.get_figheight()
    min_gap = max(0.04, 0.11 / max(height_in, 0.5))
    for value in sorted(uniform, reverse=True):
        bar.ax.axhline(value, color=UNIFORM_LINE, linewidth=1.8)
        if all(abs(value - v) >= min_gap for v in labelled):
            labelled.append(value)
    side = bar.ax.secondary_yaxis("right")
    side.set_yticks(labelled, [uniform[v] for v in labelled], fontsize=7, color=UNIFORM_LINE)
    side.tick_params(color=UNIFORM_LINE, length=4, width=1.2, pad=2)
    side.set_ylabel(f"{label} (fixed 0-1 scale)", fontsize=8)
    return bar


def edge_uniform(cell: CellSpace) -> dict[float, str]:
    """The uniform value of every edge's operation vector, as colour_bar marks it."""
    return {1.0 / len(cell.ops): f"uniform {_fraction(len(cell.ops))}"}


def node_uniform(cell: CellSpace) -> dict[float, str]:
    """The uniform value of each node's input vector (1 / its number of valid combinations), as colour_bar
    marks it: 'node 3: uniform 1/3'."""
    return {1.0 / len(combos): f"node {node}: uniform {_fraction(len(combos))}"
            for node, combos in zip(cell.node_ids, cell.combos)}


def _annotate(ax: Axes, values: np.ndarray, fontsize: float) -> None:
    """The values printed in their cells: white on dark colours, black on light ones."""
    for (r, c), v in np.ndenumerate(values):
        if np.isnan(v):
            continue
        red, green, blue, _ = colour_of(v)
        dark = 0.2126 * red + 0.7152 * green + 0.0722 * blue < 0.45
        ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=fontsize,
                color="white" if dark else "black")


def _separators(ax: Axes, groups: Sequence[int], width: int) -> None:
    for r in range(1, len(groups)):
        if groups[r] != groups[r - 1]:
            ax.axhline(r - 0.5, color="black", linewidth=1.2)
    ax.set_xlim(-0.5, width - 0.5)


def edge_heatmap(ax: Axes, probs: np.ndarray, cell: CellSpace, title: str = "", annotate: bool = True,
                 fontsize: float = 7.5, xlabels: bool = True, ylabels: bool = True,
                 colorbar: bool = True) -> AxesImage:
    """Draws one edge-policy matrix [n_edges, n_ops] on `ax` (image data = the probabilities, on the fixed
    scale) and returns the image. colorbar: give `ax` its own colour bar (figures of several panels share one)."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (cell.n_edges, len(cell.ops)):
        raise ValueError(f"edge policy has shape {probs.shape}; expected {(cell.n_edges, len(cell.ops))}")
    groups = [node for _, node in cell.edges]
    image = _image(ax, probs)
    if annotate:
        _annotate(ax, probs, fontsize)
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
    if colorbar:
        colour_bar(ax.figure, image, ax, edge_uniform(cell))
    return image


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
                 fontsize: float = 7.5, colorbar: bool = True) -> AxesImage:
    """Draws one structure-policy matrix: rows = searched nodes (labelled with their uniform value), columns =
    input combinations; combinations a node cannot pick are blank (hatched). Returns the image."""
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (cell.n_nodes, cell.max_combos):
        raise ValueError(f"node policy has shape {probs.shape}; expected {(cell.n_nodes, cell.max_combos)}")
    matrix, columns = node_matrix(probs, cell)
    values = matrix.filled(np.nan)
    image = _image(ax, values)
    if annotate:
        _annotate(ax, values, fontsize)
    single = cell.inputs_per_node == 1  # one input per node: columns are input nodes
    ax.set_xticks(range(len(columns)), [combo_label(c) for c in columns], fontsize=8,
                  rotation=0 if single else 45, ha="center" if single else "right", rotation_mode="anchor")
    ax.set_yticks(range(cell.n_nodes), [f"node {i}" + (f" (uniform {_fraction(len(c))})" if len(c) > 1 else
                                                        " (one choice)") for i, c in zip(cell.node_ids, cell.combos)],
                  fontsize=8)
    ax.set_xlabel("input node" if single else "input subset (() = no input)" if cell.any_subset else
                  "input combination")
    ax.set_ylabel("searched node")
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        colour_bar(ax.figure, image, ax, node_uniform(cell))
    return image


SCALE_NOTE = "colour = value on one fixed 0-1 scale (all panels); red lines on the colour bar = uniform"


def value_label(title: str) -> str:
    """What the colour bar measures, from the figure's title (Strategy.distribution_title)."""
    return "choice frequency" if "frequenc" in title.lower() else "probability"


def _strip(probabilities: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k.removeprefix("prob_"): np.asarray(v) for k, v in probabilities.items()
            if k.endswith(("_node", "_edge"))}


def policy_heatmaps(probabilities: Mapping[str, np.ndarray], space: SearchSpace | None = None,
                    epoch: int | None = None, annotate: bool = True,
                    title: str = "EDNAS policy vectors (softmax)", kind: str = "policy") -> Figure:
    """All policy vectors of one moment: per cell type, the edge (operation) policy above the node (structure)
    policy. Axes titles: '<cell> cell: operation policy' / '<cell> cell: input policy' (NB201: 'cell: ...'); `kind`
    'population' (Strategy.distribution_kind) names them 'operation choices' / 'input choices'.
    `title`: what the numbers are (Strategy.distribution_title: a policy's softmax, a population's choice
    frequencies)."""
    probs = _strip(probabilities)
    space = space or space_of(probs)
    cell = space.cell
    n_types = len(space.cell_types)
    width = max(4.8, 0.62 * len(cell.ops) + 1.6, 0.55 * len(cell.combos[-1]) + 2.4)
    edge_h, node_h = 0.3 * cell.n_edges + 1.4, 0.32 * cell.n_nodes + 1.5
    fig = new_figure(width * n_types + 1.6, edge_h + node_h + 0.8)
    grid = fig.add_gridspec(2, n_types, height_ratios=[edge_h, node_h])
    edge_axes, node_axes = [], []
    for col, t in enumerate(space.cell_types):
        edge_axes.append(fig.add_subplot(grid[0, col]))
        node_axes.append(fig.add_subplot(grid[1, col]))
        noun = "policy" if kind == "policy" else "choices"
        edge_image = edge_heatmap(edge_axes[-1], probs[f"{t}_edge"], cell, f"{cell_name(t)}: operation {noun}",
                                  annotate, colorbar=False)
        node_image = node_heatmap(node_axes[-1], probs[f"{t}_node"], cell, f"{cell_name(t)}: input {noun}",
                                  annotate, colorbar=False)
    label = value_label(title)
    colour_bar(fig, edge_image, edge_axes, edge_uniform(cell), label)  # one scale: the bars differ in marks only
    colour_bar(fig, node_image, node_axes, node_uniform(cell), label)
    when = f" at epoch {epoch}" if epoch is not None else ""
    fig.suptitle(f"{title}{when}\n{SCALE_NOTE}", fontsize=11)
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
    fig = new_figure(panel_w * len(chosen) + 2.4, panel_h * len(space.cell_types) + 1.0)
    axes = fig.subplots(len(space.cell_types), len(chosen), squeeze=False)
    for r, t in enumerate(space.cell_types):
        for c, idx in enumerate(chosen):
            ax = axes[r][c]
            image = edge_heatmap(ax, probs[f"{t}_edge"][idx], cell, f"{t}, epoch {int(numbers[idx])}", annotate,
                                 fontsize=5.5, xlabels=r == len(space.cell_types) - 1, ylabels=c == 0,
                                 colorbar=False)
            if c:
                ax.set_ylabel("")
    colour_bar(fig, image, axes.ravel().tolist(), edge_uniform(cell), value_label(title))  # one for all panels
    fig.suptitle(f"{title}\n{SCALE_NOTE}", fontsize=11)
    return fig
