"""Learning curves of the search (child loss and accuracy, reward against baseline, policy entropy) and of the
evaluation (training loss, training and test accuracy), from the per-epoch CSV rows the stages write.

The reward axis is labelled by the task's reward: validation accuracy for image tasks, reward_c / validation
perplexity for text tasks (their rows carry child_ppl). No axis uses an offset or scientific notation: an entropy
of 60.4 nats is printed 60.4, not 0.4 with "+6.0e1" in the corner.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from ._common import new_figure

Rows = Sequence[Mapping[str, Any]]


def _column(rows: Rows, key: str) -> np.ndarray:
    out = []
    for row in rows:
        value = row.get(key, "")
        try:
            out.append(float(value) if value not in ("", None) else math.nan)
        except (TypeError, ValueError):
            out.append(math.nan)
    return np.array(out)


def _panel(ax: Axes, rows: Rows, keys: Sequence[str], title: str, ylabel: str) -> None:
    epochs = _column(rows, "epoch")
    drawn = 0
    for key in keys:
        values = _column(rows, key)
        ok = np.isfinite(values)
        if ok.any():
            ax.plot(epochs[ok], values[ok], marker="o" if ok.sum() <= 30 else None, markersize=3, label=key)
            drawn += 1
    if not drawn:
        ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="grey")
    elif drawn > 1:
        ax.legend(fontsize=8)
    ax.set_title(title, fontsize=10)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for axis in (ax.xaxis, ax.yaxis):
        plain = ScalarFormatter(useOffset=False)
        plain.set_scientific(False)
        axis.set_major_formatter(plain)
    ax.set_xlabel("epoch")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)


def is_text(rows: Rows) -> bool:
    """Rows of a text (language-model) search: they record the child's perplexity."""
    return bool((~np.isnan(_column(rows, "child_ppl"))).any())  # inf (a diverged epoch) still counts


def reward_label(rows: Rows) -> str:
    """What the reward is: reward_c / validation perplexity (text tasks) or validation accuracy (image tasks)."""
    return "reward = c / validation perplexity" if is_text(rows) else "validation accuracy"


def search_curves(rows: Rows) -> Figure:
    """Four panels: child loss, child accuracy, reward and baseline, policy entropy (per epoch)."""
    fig = new_figure(10.0, 6.5)
    axes = fig.subplots(2, 2)
    text = is_text(rows)
    _panel(axes[0][0], rows, ["child_loss"], "shared-weight child: training loss", "cross-entropy")
    _panel(axes[0][1], rows, ["child_acc"], "shared-weight child: training "
           + ("next-token accuracy" if text else "accuracy"), "accuracy")
    _panel(axes[1][0], rows, ["reward", "baseline"], "policy: reward and moving-average baseline",
           reward_label(rows))
    _panel(axes[1][1], rows, ["entropy"], "policy entropy (all vectors, summed)", "nats")
    fig.suptitle("Search learning curves", fontsize=11)
    return fig


def evaluate_curves(rows: Rows) -> Figure:
    """Two panels: training (and test, when recorded) loss; training and test accuracy (per epoch)."""
    fig = new_figure(10.0, 3.8)
    axes = fig.subplots(1, 2)
    _panel(axes[0], rows, ["train_loss", "test_loss"], "loss", "cross-entropy")
    _panel(axes[1], rows, ["train_acc", "test_acc"], "accuracy", "accuracy")
    fig.suptitle("Evaluation (training from scratch) learning curves", fontsize=11)
    return fig
