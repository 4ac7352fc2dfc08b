"""Learning curves: the reward axis names the task's reward, and no axis hides its values behind an offset."""

from __future__ import annotations

import pytest

from ednas_core.viz import evaluate_curves, search_curves
from ednas_core.viz.curves import reward_label


def search_rows(text: bool, epochs: int = 6):
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": str(e), "child_loss": str(2.0 - 0.1 * e), "child_acc": str(0.1 * e),
               "reward": str(0.1 * e), "baseline": str(0.08 * e),
               "entropy": str(60.5 + 0.0004 * e)}  # a tiny range far from 0: matplotlib's default shows an offset
        if text:
            row["child_ppl"] = str(7.4 - 0.1 * e)
            row["reward"] = str(80 / (7.4 - 0.1 * e))
        rows.append(row)
    return rows


def axis(fig, title):
    found = [ax for ax in fig.axes if ax.get_title() == title]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


@pytest.mark.parametrize("text, label", [(False, "validation accuracy"),
                                         (True, "reward = c / validation perplexity")])
def test_reward_axis_is_labelled_by_the_tasks_reward(text, label):
    rows = search_rows(text)
    assert reward_label(rows) == label
    ax = axis(search_curves(rows), "policy: reward and moving-average baseline")
    assert ax.get_ylabel() == label
    if text:
        assert "accuracy" not in ax.get_ylabel()


def test_text_rows_with_empty_perplexity_are_image_rows():
    rows = [{**r, "child_ppl": ""} for r in search_rows(False)]
    assert reward_label(rows) == "validation accuracy"


def test_no_axis_uses_an_offset_or_scientific_notation():
    fig = search_curves(search_rows(False))
    fig.draw_without_rendering()
    entropy = axis(fig, "policy entropy (all vectors, summed)")
    assert entropy.yaxis.get_offset_text().get_text() == ""
    assert all(t.get_text().startswith("60.50") for t in entropy.get_yticklabels() if t.get_text())
    for ax in fig.axes:
        assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""
    rows = [{"epoch": str(e), "train_loss": str(1e-4 + 1e-7 * e), "train_acc": str(0.99990 + 1e-6 * e)}
            for e in range(1, 6)]
    fig = evaluate_curves(rows)
    fig.draw_without_rendering()
    for ax in fig.axes:
        assert ax.yaxis.get_offset_text().get_text() == "", ax.get_title()
