"""Cell diagrams of a genotype (the paper's Figures 6 and 8), drawn with matplotlib patches only.

Deterministic layout, left to right: the inputs on the left (CNN: c_{k-2} above, c_{k-1} below; RNN: x_t above,
h_{t-1} below, both feeding the fixed node 0), the searched nodes on one row in index order, the output on the
right (CNN: c_{k} = concat of the concat nodes; RNN: h_t = mean of nodes 1..8). Every selected edge is an arrow
labelled with its operation (CNN) or activation (RNN); edges that skip nodes arc over or under the row, and the
output connections are dashed grey arcs under the row. NAS-Bench-201 cells: the one input (node 0 = c_{k-1})
above the row of nodes 1..3, only the edges whose op is not `none`, the output c_{k} = node 3.

Size: the figure is as wide as its layout, which grows with the node count (UNIT_INCHES per layout unit). A
report shows a figure at most READING_WIDTH_IN wide, shrinking a wider one, text included; so every text, arrow
head and line of a diagram wider than that is enlarged by width / READING_WIDTH_IN (text_scale): once shrunk to
the report's width, the 9-point edge labels of the 8-node recurrent cell read at 9 points, as the CNN cell's do.
"""

from __future__ import annotations

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.text import Text

from ..genotypes import Genotype
from ..spaces.nb201 import NONE
from ._common import cell_name, new_figure

DX = 3.0           # distance between consecutive nodes on the row (CNN; the RNN row is tighter)
INPUT_Y = 1.7      # inputs above and below the row
RADIUS = 0.42
ARC = 0.4          # curvature of edges that skip nodes: their labels sit above those of the input edges
INPUT_LABEL_T = 0.65  # input-edge labels sit nearer the target, so labels of edges from one input spread out
UNIT_INCHES = 0.72    # figure inches per layout unit
OUT_ARC = 0.13       # curvature of the dashed output connections (clears the nodes they pass)
READING_WIDTH_IN = 12.5  # the report's column (1400 px at the figures' 110 dpi, less its margins)

FAMILY_COLOURS = {"conv": "#1f4e99", "pool": "#2e7d32", "skip": "#6d6d6d", "act": "#8e3b8e"}


def _family(op: str) -> str:
    if "conv" in op:
        return "conv"
    if "pool" in op:
        return "pool"
    if op in ("skip_connect", "identity"):
        return "skip"
    return "act"


def _box(ax: Axes, xy: tuple[float, float], text: str, colour: str) -> FancyBboxPatch:
    w, h = 1.3, 0.7
    patch = FancyBboxPatch((xy[0] - w / 2, xy[1] - h / 2), w, h, boxstyle="round,pad=0.06", fc=colour,
                           ec="black", lw=1.0, zorder=3)
    ax.add_patch(patch)
    ax.text(*xy, text, ha="center", va="center", fontsize=12, zorder=4)
    return patch


def _circle(ax: Axes, xy: tuple[float, float], text: str) -> Circle:
    patch = Circle(xy, RADIUS, fc="#fff2cc", ec="black", lw=1.0, zorder=3)
    ax.add_patch(patch)
    ax.text(*xy, text, ha="center", va="center", fontsize=12, zorder=4)
    return patch


def _arrow(ax: Axes, a: Patch, b: Patch, pa: tuple[float, float], pb: tuple[float, float], rad: float,
           colour: str, label: str = "", dashed: bool = False, t: float = 0.5) -> None:
    ax.add_patch(FancyArrowPatch(pa, pb, patchA=a, patchB=b, connectionstyle=f"arc3,rad={rad}",
                                 arrowstyle="-|>", mutation_scale=13, color=colour, lw=1.0 if dashed else 1.5,
                                 linestyle="--" if dashed else "-", zorder=1 if dashed else 2))
    if not label:
        return
    # the point at parameter t of matplotlib's arc3 quadratic Bezier: control = mid + rad * (dy, -dx)
    (x1, y1), (x2, y2) = pa, pb
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    x = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t ** 2 * x2
    y = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t ** 2 * y2
    ax.text(x, y, label, ha="center", va="center", fontsize=9, color=colour, zorder=5,
            bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.9))


def _skip_rad(span: int, above: bool) -> float:
    """arc3 curvature: 0 for consecutive nodes; otherwise over (negative for left-to-right) or under the row."""
    return 0.0 if span <= 1 else (-ARC if above else ARC)


def _figure(x0: float, x1: float, y0: float, y1: float) -> tuple[Figure, Axes]:
    fig = new_figure(UNIT_INCHES * (x1 - x0), UNIT_INCHES * (y1 - y0) + 0.9)
    ax = fig.add_subplot()
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig, ax


def _finish(ax: Axes, title: str, caption: str, families: set[str]) -> None:
    ax.set_title(title, fontsize=12)
    ax.text(0.5, 0.0, caption, transform=ax.transAxes, ha="center", va="top", fontsize=9, color="#444444")
    handles = [Patch(color=c, label=name) for name, c in FAMILY_COLOURS.items() if name in families]
    handles.append(Patch(fc="white", ec="#9a9a9a", ls="--", label="to output"))
    ax.legend(handles=handles, loc="upper right", fontsize=8, frameon=False, ncol=len(handles),
              bbox_to_anchor=(1.0, 1.0))


def _cnn(genotype: Genotype, cell_type: str, title: str) -> Figure:
    cell = genotype.search_space.cell
    n = cell.n_nodes
    fig, ax = _figure(-1.0, DX * (n + 1) + 1.0, -INPUT_Y - 0.9, INPUT_Y + 1.1)
    pos = {0: (0.0, INPUT_Y), 1: (0.0, -INPUT_Y)}
    patches = {0: _box(ax, pos[0], "$c_{k-2}$", "#d9ead3"), 1: _box(ax, pos[1], "$c_{k-1}$", "#d9ead3")}
    for k in range(n):
        node = cell.n_inputs + k
        pos[node] = (DX * (k + 1), 0.0)
        patches[node] = _circle(ax, pos[node], str(k))
    out = (DX * (n + 1), 0.0)
    out_patch = _box(ax, out, "$c_{k}$", "#f4cccc")
    pairs = genotype.cells[cell_type]
    per = cell.inputs_per_node
    families = set()
    for k in range(n):
        node = cell.n_inputs + k
        for op, src in pairs[k * per:(k + 1) * per]:
            families.add(_family(op))
            colour = FAMILY_COLOURS[_family(op)]
            if src < cell.n_inputs:
                _arrow(ax, patches[src], patches[node], pos[src], pos[node], 0.0, colour, op, t=INPUT_LABEL_T)
            else:
                span = node - src
                _arrow(ax, patches[src], patches[node], pos[src], pos[node], _skip_rad(span, src % 2 == 0),
                       colour, op)
    for c in genotype.concat[cell_type]:
        span = cell.n_inputs + n - c
        _arrow(ax, patches[c], out_patch, pos[c], out, 0.0 if span <= 1 else OUT_ARC, "#9a9a9a", dashed=True)
    nodes = ", ".join(str(c - cell.n_inputs) for c in genotype.concat[cell_type])
    _finish(ax, title, f"$c_{{k}}$ = concat of nodes {nodes}; node i = sum of its two operations", families)
    return fig


def _rnn(genotype: Genotype, cell_type: str, title: str) -> Figure:
    cell = genotype.search_space.cell
    n = cell.n_nodes
    step = DX * 0.8
    fig, ax = _figure(-1.3, DX * 0.6 + step * n + DX + 1.0, -INPUT_Y - 0.9, INPUT_Y + 1.3)
    xt, hp = (-0.4, INPUT_Y), (-0.4, -INPUT_Y)
    px, ph = _box(ax, xt, "$x_t$", "#d9ead3"), _box(ax, hp, "$h_{t-1}$", "#d9ead3")
    pos = {0: (DX * 0.6, 0.0)}
    patches = {0: _circle(ax, pos[0], "0")}
    for p, xy in ((px, xt), (ph, hp)):
        _arrow(ax, p, patches[0], xy, pos[0], 0.0, FAMILY_COLOURS["act"])
    ax.text(pos[0][0], pos[0][1] - RADIUS - 0.3, "tanh", ha="center", va="top", fontsize=9,
            color=FAMILY_COLOURS["act"])
    for i in range(1, n + 1):
        pos[i] = (DX * 0.6 + step * i, 0.0)
        patches[i] = _circle(ax, pos[i], str(i))
    out = (pos[n][0] + DX, 0.0)
    out_patch = _box(ax, out, "$h_t$", "#f4cccc")
    families = {"act"}
    for i, (act, src) in enumerate(genotype.cells[cell_type], start=1):
        families.add(_family(act))
        _arrow(ax, patches[src], patches[i], pos[src], pos[i], _skip_rad(i - src, True),
               FAMILY_COLOURS[_family(act)], act)
    for c in genotype.concat[cell_type]:
        span = n - c + 1
        _arrow(ax, patches[c], out_patch, pos[c], out, 0.0 if span <= 1 else OUT_ARC, "#9a9a9a", dashed=True)
    _finish(ax, title, "$h_t$ = mean of nodes 1..8; node i = highway update of its input with the activation "
            "shown", families)
    return fig


def _any_subset(genotype: Genotype, cell_type: str, title: str) -> Figure:
    """An any-subset cell (NAS-Bench-201): the input node 0 (the previous cell's output) above the row of searched
    nodes, every edge whose op is not `none` as a labelled arrow (edges between searched nodes that skip one arc
    under the row), and the output c_k = the concat nodes (NB201: node 3 alone). A node left without any input
    edge is zero, drawn grey."""
    cell = genotype.search_space.cell
    n = cell.n_nodes
    fig, ax = _figure(-1.0, DX * (n + 1) + 1.0, -INPUT_Y - 0.5, INPUT_Y + 1.1)
    pos, patches = {}, {}
    for i in range(cell.n_inputs):  # NB201: one input, above-left of the row
        pos[i] = (DX * i, INPUT_Y)
        patches[i] = _box(ax, pos[i], "$c_{k-1}$" if cell.n_inputs == 1 else f"in {i}", "#d9ead3")
    pairs = genotype.cells[cell_type]  # one [op, input] per edge of the full DAG, edge_id order
    fed = {node for (op, _), (_, node) in zip(pairs, cell.edges) if op != NONE}
    for node in cell.node_ids:
        pos[node] = (DX * (node - cell.n_inputs + 1), 0.0)
        patches[node] = _circle(ax, pos[node], str(node))
        if node not in fed:
            patches[node].set_facecolor("#e6e6e6")
    out = (DX * (n + 1), 0.0)
    out_patch = _box(ax, out, "$c_{k}$", "#f4cccc")
    families = set()
    for (op, src), (pred, node) in zip(pairs, cell.edges):
        if op == NONE:
            continue
        families.add(_family(op))
        colour = FAMILY_COLOURS[_family(op)]
        if src < cell.n_inputs:
            _arrow(ax, patches[src], patches[node], pos[src], pos[node], 0.0, colour, op, t=INPUT_LABEL_T)
        else:
            _arrow(ax, patches[src], patches[node], pos[src], pos[node], _skip_rad(node - src, False), colour, op)
    for c in genotype.concat[cell_type]:
        span = cell.n_inputs + n - c
        _arrow(ax, patches[c], out_patch, pos[c], out, 0.0 if span <= 1 else OUT_ARC, "#9a9a9a", dashed=True)
    nodes = ", ".join(str(c) for c in genotype.concat[cell_type])
    _finish(ax, title, f"$c_{{k}}$ = node {nodes}; node i = sum of its incoming operations (node 0 = $c_{{k-1}}$); "
            "'none' edges are not drawn, a node without inputs (grey) is zero", families)
    return fig


def text_scale(width_in: float) -> float:
    """How much a diagram `width_in` inches wide enlarges its text and strokes (1 up to READING_WIDTH_IN)."""
    return max(1.0, width_in / READING_WIDTH_IN)


def _scale_for_reading(fig: Figure) -> None:
    scale = text_scale(fig.get_figwidth())
    if scale == 1.0:
        return
    for ax in fig.axes:
        legend = ax.get_legend()
        texts: list[Text] = [*ax.texts, ax.title, *(legend.get_texts() if legend else [])]
        for text in texts:
            text.set_fontsize(text.get_fontsize() * scale)
        for patch in ax.patches:
            patch.set_linewidth(patch.get_linewidth() * scale)
            if isinstance(patch, FancyArrowPatch):
                patch.set_mutation_scale(patch.get_mutation_scale() * scale)


def cell_diagram(genotype: Genotype, cell_type: str, title: str | None = None) -> Figure:
    """The diagram of one cell of a genotype (CNN: 'normal' or 'reduce'; RNN: 'recurrent'; NB201: 'cell'); its text is
    enlarged with its width (text_scale), so that it reads at the report's width."""
    if cell_type not in genotype.cells:
        raise ValueError(f"genotype has no {cell_type!r} cell; it has {', '.join(genotype.cells)}")
    title = title or cell_name(cell_type)
    if genotype.search_space.cell.any_subset:
        draw = _any_subset
    else:
        draw = _rnn if genotype.space == "rnn" else _cnn
    fig = draw(genotype, cell_type, title)
    _scale_for_reading(fig)
    return fig


def genotype_diagrams(genotype: Genotype, name: str = "") -> dict[str, Figure]:
    """One diagram per cell type of the genotype, titled '<name>: <cell> cell'."""
    prefix = f"{name}: " if name else ""
    return {t: cell_diagram(genotype, t, f"{prefix}{cell_name(t)}") for t in genotype.cells}
