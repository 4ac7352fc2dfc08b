"""Learning curves of the search (child loss and accuracy, reward against baseline, policy entropy, and the search
strategy's own signals: ENAS's controller, EvNAS's and REA's population, NAO-WS's predictor) and of the evaluation
(training loss, training and test accuracy), from the per-epoch CSV rows the stages write.

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


# a panel of a strategy's own signals: (keys of search_epochs.csv, title, y label; None = the task's reward axis)
Panel = tuple[Sequence[str], str, str | None]


def search_curves(rows: Rows, strategy: str = "ednas", has_policy: bool = True,
                  own: Sequence[Panel] = (), baseline: str = "moving average of the reward") -> Figure:
    """Child loss and accuracy (a row left out without a child: a tabular search), reward (and baseline where the
    strategy keeps one), the entropy of the policy (`has_policy`: EDNAS, random) or of the choice frequencies (the
    others) per epoch; then a row of the strategy's own signals, `own` (its Strategy.signal_panels). `baseline`
    says what the baseline averages (Strategy.baseline_title). Epochs without a value (NAO between rounds) are
    left out of a line."""
    columns = 6  # the child's and the reward's rows: two panels of 3 columns; the last: len(own) of 6 / len(own)
    child = bool(np.isfinite(_column(rows, "child_loss")).any())  # none in a tabular search: no network
    n_rows = (2 if child else 1) + (1 if own else 0)
    fig = new_figure(10.0 if len(own) < 3 else 12.0, 3.0 * n_rows + 0.5)
    grid = fig.add_gridspec(n_rows, columns)
    pairs = [(fig.add_subplot(grid[r, 0:3]), fig.add_subplot(grid[r, 3:6])) for r in range(n_rows - bool(own))]
    text = is_text(rows)
    reward = reward_label(rows)
    if child:
        loss_ax, acc_ax = pairs[0]
        _panel(loss_ax, rows, ["child_loss"], "shared-weight child: training loss", "cross-entropy")
        _panel(acc_ax, rows, ["child_acc"], "shared-weight child: training "
               + ("next-token accuracy" if text else "accuracy"), "accuracy")
    reward_ax, entropy_ax = pairs[-1]
    has_baseline = bool(np.isfinite(_column(rows, "baseline")).any())
    who = "policy" if has_policy else strategy
    _panel(reward_ax, rows, ["reward", "baseline"] if has_baseline else ["reward"],
           f"{who}: reward and baseline ({baseline})" if has_baseline
           else "reward: mean over the epoch's scored architectures", reward)
    _panel(entropy_ax, rows, ["entropy"], "policy entropy (all vectors, summed)" if has_policy
           else "entropy of the choice frequencies (all vectors, summed)", "nats")
    for k, (keys, title, ylabel) in enumerate(own):
        width = columns // len(own)
        _panel(fig.add_subplot(grid[n_rows - 1, k * width:(k + 1) * width]), rows, list(keys), title,
               reward if ylabel is None else ylabel)
    fig.suptitle(f"Search learning curves ({strategy})" if own else "Search learning curves", fontsize=11)
    return fig


def evaluate_curves(rows: Rows) -> Figure:
    """Two panels: training (and test, when recorded) loss; training and test accuracy (per epoch)."""
    fig = new_figure(10.0, 3.8)
    axes = fig.subplots(1, 2)
    _panel(axes[0], rows, ["train_loss", "test_loss"], "loss", "cross-entropy")
    _panel(axes[1], rows, ["train_acc", "test_acc"], "accuracy", "accuracy")
    fig.suptitle("Evaluation (training from scratch) learning curves", fontsize=11)
    return fig
