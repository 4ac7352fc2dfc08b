"""Cumulative sampling histograms (paper Figure 5): windows for short and long runs, shares, panels, files."""

from __future__ import annotations

import numpy as np
import pytest

from ednas_core.ops import CNN_OPS
from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.viz import default_window, sampling_histograms, save_figure, window_bounds
from ednas_core.viz.histograms import windowed_shares


def counts(epochs, space=CNN_SPACE, seed=0):
    rng = np.random.default_rng(seed)
    cell = space.cell
    return {f"counts_{t}": rng.integers(0, 20, size=(epochs, cell.n_edges, len(cell.ops))) for t in space.cell_types}


@pytest.mark.parametrize("epochs, window, n_windows", [(300, 50, 6), (600, 50, 12), (150, 30, 5), (15, 3, 5),
                                                      (7, 2, 4), (3, 1, 3), (1, 1, 1)])
def test_default_window_gives_50_epochs_or_about_five_windows(epochs, window, n_windows):
    assert default_window(epochs) == window
    assert len(window_bounds(epochs, window)) == n_windows


def test_short_runs_have_at_least_three_windows():
    assert all(len(window_bounds(e, default_window(e))) >= 3 for e in range(3, 400))


def test_window_bounds_cover_every_epoch_once():
    assert window_bounds(7, 3) == [(0, 3), (3, 6), (6, 7)]
    with pytest.raises(ValueError):
        window_bounds(7, 0)


def test_windowed_shares_sum_edges_over_ops_and_ops_over_edges():
    c = np.zeros((4, 14, 7))
    c[0, 0, 3] = 3  # window 1: edge 0->2 with sep_conv_3x3, three times
    c[1, 5, 0] = 1  # window 1: edge 0->4 with max_pool_3x3 once
    c[2, 13, 6] = 2  # window 2
    edges = windowed_shares(c, 2, "edge")
    ops = windowed_shares(c, 2, "op")
    assert edges.shape == (2, 14) and ops.shape == (2, 7)
    np.testing.assert_allclose(edges[0, [0, 5]], [0.75, 0.25])
    np.testing.assert_allclose(ops[0, [3, 0]], [0.75, 0.25])
    assert edges[1, 13] == 1.0 and ops[1, 6] == 1.0
    np.testing.assert_allclose(edges.sum(1), 1.0)


def test_cnn_figure_has_four_labelled_panels_with_stacked_shares():
    data = counts(15)
    fig = sampling_histograms(data, epochs=list(range(1, 16)))
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["edges sampled (normal cell)", "operations sampled (normal cell)", "edges sampled (reduce cell)",
                      "operations sampled (reduce cell)"]
    assert "3-epoch window" in fig._suptitle.get_text()
    for ax in fig.axes:
        assert [t.get_text() for t in ax.get_xticklabels()] == ["1-3", "4-6", "7-9", "10-12", "13-15"]
        assert ax.get_xlabel() == "epochs" and ax.get_ylabel().startswith("share of sampled")
    ops_ax = fig.axes[3]
    legend = [t.get_text() for t in ops_ax.get_legend().get_texts()]
    assert sorted(legend) == sorted(CNN_OPS)
    # bars: one rectangle per (op, window), stacked to 1 in every window
    heights = np.array([p.get_height() for p in ops_ax.patches]).reshape(7, 5)
    np.testing.assert_allclose(heights.sum(axis=0), 1.0)
    np.testing.assert_allclose(heights[:, 0], windowed_shares(data["counts_reduce"], 3, "op")[0])
    edge_ax = fig.axes[0]
    assert len(edge_ax.get_legend().get_texts()) == 14
    np.testing.assert_allclose(np.array([p.get_height() for p in edge_ax.patches]).reshape(14, 5)[:, 4],
                               windowed_shares(data["counts_normal"], 3, "edge")[4])


def test_long_run_uses_50_epoch_windows_and_explicit_window_wins():
    fig = sampling_histograms(counts(300))
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["1-50", "51-100", "101-150", "151-200",
                                                                     "201-250", "251-300"]
    fig = sampling_histograms(counts(300), window=100)
    assert len(fig.axes[0].get_xticklabels()) == 3


def test_rnn_figure_and_files(tmp_path):
    fig = sampling_histograms(counts(10, RNN_SPACE))
    assert [ax.get_title() for ax in fig.axes] == ["edges sampled (recurrent cell)",
                                                   "operations sampled (recurrent cell)"]
    assert len(fig.axes[0].get_legend().get_texts()) == 36
    png, svg = save_figure(fig, tmp_path / "hist")
    assert png.stat().st_size > 10_000 and svg.stat().st_size > 10_000
