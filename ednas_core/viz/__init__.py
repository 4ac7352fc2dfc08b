"""Figures of a search and its result, drawn with matplotlib only (no pyplot state, no system binaries).

One figure family per module, each a few typed functions returning a `matplotlib.figure.Figure`:

- heatmaps.py   — the policy vectors as heatmaps (the paper's Figure 4) and small multiples over epochs;
- histograms.py — cumulative sampling histograms of edges and operations per window of epochs (Figure 5);
- cells.py      — cell diagrams of a genotype (Figures 6 and 8);
- curves.py     — learning curves of the search and of the evaluation.

Figures are built with `Figure()` directly (the Agg canvas), so they never open a window, need no backend
switch and are not kept alive by pyplot: they are freed once the caller drops them. `save_figure` writes PNG
and SVG atomically and reproducibly (no dates in the SVG, fixed SVG ids).
"""

from ._common import figure_png_bytes, save_figure
from .cells import cell_diagram, genotype_diagrams
from .curves import evaluate_curves, search_curves
from .heatmaps import edge_heatmap, node_heatmap, policy_heatmaps, policy_small_multiples, select_epochs
from .histograms import default_window, sampling_histograms, window_bounds

__all__ = [
    "cell_diagram", "default_window", "edge_heatmap", "evaluate_curves", "figure_png_bytes", "genotype_diagrams",
    "node_heatmap", "policy_heatmaps", "policy_small_multiples", "sampling_histograms", "save_figure",
    "search_curves", "select_epochs", "window_bounds",
]
