"""Policy heatmaps (paper Figure 4): shapes, labels, printed values, and an honest colour scale: a cell's colour is
a function of its value only (one fixed 0-1 scale), every figure has a colour bar with the uniform values marked,
and padded entries are blank."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from matplotlib.figure import Figure

from ednas_core.ops import CNN_OPS
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.spaces.rnn import RNN_ACTIVATIONS
from ednas_core.viz import policy_heatmaps, policy_small_multiples, save_figure, select_epochs
from ednas_core.viz.heatmaps import BLANK_HATCH, colour_of, edge_heatmap, node_heatmap, node_matrix


def probabilities(space, seed=0):
    """A policy far from uniform, so that every value and colour is distinct."""
    return PolicyVectors(space, init_std=1.0, generator=torch.Generator().manual_seed(seed)).probabilities()


def axis(fig, title):
    found = [ax for ax in fig.axes if ax.get_title() == title]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


def ticklabels(ax, which):
    ticks = ax.get_xticklabels() if which == "x" else ax.get_yticklabels()
    return [t.get_text() for t in ticks]


def printed(ax):
    return [t.get_text() for t in ax.texts]


def test_cnn_edge_heatmap_rows_columns_labels_and_values():
    probs = probabilities(CNN_SPACE)
    fig = policy_heatmaps(probs, epoch=7)
    assert "epoch 7" in fig._suptitle.get_text()
    for cell in ("normal", "reduce"):
        ax = axis(fig, f"{cell} cell: operation policy")
        image = ax.images[0].get_array()
        assert image.shape == (14, 7)
        labels = ticklabels(ax, "y")
        assert labels[:5] == ["0->2", "1->2", "0->3", "1->3", "2->3"] and labels[-1] == "4->5" and len(labels) == 14
        assert ticklabels(ax, "x") == list(CNN_OPS)
        assert ax.get_xlabel() and ax.get_ylabel()
        expected = [f"{v:.2f}" for v in probs[f"{cell}_edge"].ravel()]
        assert printed(ax) == expected


def drawn_colours(ax):
    """The RGBA of every cell of the heatmap on `ax`, as drawn (masked cells included)."""
    image = ax.images[0]
    return image.to_rgba(image.get_array())


def colour_bars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def marked_values(bar_ax):
    """The values at which a horizontal line crosses the colour bar (the uniform marks)."""
    return sorted(line.get_ydata()[0] for line in bar_ax.lines)


def heatmap_axes(fig):
    return [ax for ax in fig.axes if ax.images]


def peaked_policy(space=CNN_SPACE):
    """Edge rows drawn from two vectors sharing the values 0.2 and 0.1 but not their min/max, so that a
    per-destination (or per-row) normalisation would colour the same value differently in different groups."""
    a = np.array([0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05])
    b = np.array([0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])
    cell = space.cell
    edge = np.array([a if dst % 2 else b for _, dst in cell.edges])
    node = np.zeros((cell.n_nodes, cell.max_combos))
    for row, combos in enumerate(cell.combos):
        node[row, : len(combos)] = np.full(len(combos), 1 / len(combos))
    node[3, :10] = [0.2, 0.2, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05]  # node 5 shares 0.2/0.1 with the edges
    return {f"{t}_{k}": v.copy() for t in space.cell_types for k, v in (("edge", edge), ("node", node))}


def cell_values(ax, probs, cell, kind):
    """The probability each drawn cell shows (NaN where the cell is padding)."""
    return probs if kind == "edge" else node_matrix(probs, cell)[0].filled(np.nan)


def test_a_cells_colour_is_a_function_of_its_value_only():
    probs = peaked_policy()
    fig = policy_heatmaps(probs)
    seen = {}
    for t in CNN_SPACE.cell_types:
        for kind, name in (("edge", "operation"), ("node", "input")):
            ax = axis(fig, f"{t} cell: {name} policy")
            values = cell_values(ax, probs[f"{t}_{kind}"], CNN_SPACE.cell, kind)
            colours = drawn_colours(ax)
            for (r, c), v in np.ndenumerate(values):
                if np.isnan(v):
                    continue
                np.testing.assert_allclose(colours[r, c], colour_of(v), atol=1e-6)  # the fixed scale
                seen.setdefault(round(float(v), 6), set()).add(tuple(np.round(colours[r, c], 6)))
    assert {0.2, 0.1, 0.05} <= set(seen)
    assert all(len(rgba) == 1 for rgba in seen.values()), seen  # one value, one colour, in every panel and node


def test_a_uniform_policy_is_drawn_in_the_colour_of_its_uniform_value_not_saturated():
    cell = CNN_SPACE.cell
    uniform = peaked_policy()
    for t in CNN_SPACE.cell_types:
        uniform[f"{t}_edge"] = np.full((cell.n_edges, 7), 1 / 7)
        uniform[f"{t}_node"][3, :10] = 0.1
    fig = policy_heatmaps(uniform, epoch=1)
    top, bottom = colour_of(1.0), colour_of(0.0)
    for t in CNN_SPACE.cell_types:
        colours = drawn_colours(axis(fig, f"{t} cell: operation policy")).reshape(-1, 4)
        np.testing.assert_allclose(colours, np.tile(colour_of(1 / 7), (len(colours), 1)), atol=1e-6)
        assert not np.allclose(colours[0], top) and not np.allclose(colours[0], bottom)
        nodes = axis(fig, f"{t} cell: input policy")
        drawn = drawn_colours(nodes)
        for row, combos in enumerate(cell.combos):
            expected = colour_of(1 / len(combos))
            np.testing.assert_allclose(drawn[row][~np.ma.getmaskarray(nodes.images[0].get_array())[row]],
                                       np.tile(expected, (len(combos), 1)), atol=1e-6)


@pytest.mark.parametrize("space", [CNN_SPACE, RNN_SPACE])
def test_every_heatmap_figure_has_a_colour_bar_marking_the_uniform_values(space):
    probs = probabilities(space)
    fig = policy_heatmaps(probs)
    bars = colour_bars(fig)
    assert len(bars) == 2  # operations and inputs: one scale, each bar marking its vectors' uniform values
    cell = space.cell
    edge_bar = [b for b in bars if len(b.lines) == 1][0]
    node_bar = [b for b in bars if b is not edge_bar][0]
    assert marked_values(edge_bar) == pytest.approx([1 / len(cell.ops)])
    assert marked_values(node_bar) == pytest.approx(sorted(1 / len(c) for c in cell.combos))
    for bar in bars:
        assert bar.get_ylim() == (0.0, 1.0)  # the fixed scale, whatever the data
        assert "fixed 0-1 scale" in " ".join(a.get_ylabel() for a in [bar, *bar.child_axes])
    labels = [t.get_text() for a in edge_bar.child_axes for t in a.get_yticklabels()]
    assert f"uniform 1/{len(cell.ops)}" in labels
    for ax in heatmap_axes(fig):
        assert ax.images[0].norm.vmin == 0.0 and ax.images[0].norm.vmax == 1.0
    # each heatmap drawn alone gets its own colour bar too
    alone = Figure()
    edge_heatmap(alone.add_subplot(), probs[f"{space.cell_types[0]}_edge"], cell)
    node_heatmap(alone.add_subplot(), probs[f"{space.cell_types[0]}_node"], cell)
    assert len(colour_bars(alone)) == 2


def test_padded_entries_are_blank_not_the_colour_of_zero():
    probs = peaked_policy()
    fig = policy_heatmaps(probs)
    ax = axis(fig, "normal cell: input policy")
    mask = np.ma.getmaskarray(ax.images[0].get_array())
    assert mask.sum() == 9 + 7 + 4
    colours = drawn_colours(ax)
    assert np.all(colours[mask][:, 3] == 0.0)  # transparent: the hatched background shows
    assert colour_of(0.0)[3] == 1.0 and not np.allclose(colours[mask][0], colour_of(0.0))
    assert ax.patch.get_hatch() == BLANK_HATCH
    assert len(printed(ax)) == int((~mask).sum())  # no number printed in a blank cell


def test_cnn_node_heatmap_has_shared_combination_columns_and_blank_masked_entries():
    probs = probabilities(CNN_SPACE, seed=1)
    ax = axis(policy_heatmaps(probs), "reduce cell: input policy")
    image = ax.images[0].get_array()
    assert image.shape == (4, 10)
    assert ticklabels(ax, "x") == ["(0,1)", "(0,2)", "(0,3)", "(0,4)", "(1,2)", "(1,3)", "(1,4)", "(2,3)", "(2,4)",
                                   "(3,4)"]
    assert ticklabels(ax, "y") == ["node 2 (one choice)", "node 3 (uniform 1/3)", "node 4 (uniform 1/6)",
                                   "node 5 (uniform 1/10)"]
    mask = np.ma.getmaskarray(image)
    assert mask.sum(axis=1).tolist() == [9, 7, 4, 0]  # 1, 3, 6 and 10 combinations
    assert not mask[1, [0, 1, 4]].any() and mask[1, [2, 3, 5]].all()  # node 3: (0,1), (0,2), (1,2)
    # values printed for the valid entries only, node by node in the node's own combination order
    node = probs["reduce_node"]
    expected = ["1.00"] + [f"{v:.2f}" for k in (1, 2, 3) for v in node[k, : (3, 6, 10)[k - 1]]]
    assert sorted(printed(ax)) == sorted(expected)
    np.testing.assert_allclose(np.asarray(image)[~mask], node_matrix(node, CNN_SPACE.cell)[0].compressed())


def test_rnn_heatmaps_have_36_edges_by_4_activations_and_8_nodes():
    probs = probabilities(RNN_SPACE)
    fig = policy_heatmaps(probs)
    ax = axis(fig, "recurrent cell: operation policy")
    assert ax.images[0].get_array().shape == (36, 4)
    assert ticklabels(ax, "x") == list(RNN_ACTIVATIONS)
    assert ticklabels(ax, "y")[:3] == ["0->1", "0->2", "1->2"] and ticklabels(ax, "y")[-1] == "7->8"
    assert printed(ax) == [f"{v:.2f}" for v in probs["recurrent_edge"].ravel()]
    nodes = axis(fig, "recurrent cell: input policy")
    image = nodes.images[0].get_array()
    assert image.shape == (8, 8)
    assert ticklabels(nodes, "x") == [str(i) for i in range(8)]
    assert np.ma.getmaskarray(image).sum(axis=1).tolist() == [7, 6, 5, 4, 3, 2, 1, 0]


def test_history_keys_with_prob_prefix_are_accepted():
    probs = probabilities(CNN_SPACE)
    fig = policy_heatmaps({f"prob_{k}": v for k, v in probs.items()})
    assert len([ax for ax in fig.axes if ax.images]) == 4


def test_select_epochs_evenly_spaced_with_first_and_last():
    assert select_epochs(300, 6) == [0, 60, 120, 179, 239, 299]
    assert select_epochs(20, 6) == [0, 4, 8, 11, 15, 19]
    assert select_epochs(3, 6) == [0, 1, 2]
    assert select_epochs(1, 6) == [0]


def test_small_multiples_grid_over_epochs():
    epochs = 20
    rng = np.random.default_rng(0)
    history = {"epoch": np.arange(1, epochs + 1)}
    for cell in CNN_SPACE.cell_types:
        logits = rng.normal(size=(epochs, 14, 7))
        history[f"prob_{cell}_edge"] = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        history[f"prob_{cell}_node"] = np.full((epochs, 4, 10), 0.1)
    fig = policy_small_multiples(history)
    titles = [ax.get_title() for ax in heatmap_axes(fig)]
    assert titles == [f"{c}, epoch {e}" for c in ("normal", "reduce") for e in (1, 5, 9, 12, 16, 20)]
    ax = axis(fig, "reduce, epoch 12")
    assert ax.images[0].get_array().shape == (14, 7)
    assert printed(ax) == [f"{v:.2f}" for v in history["prob_reduce_edge"][11].ravel()]
    assert fig.get_size_inches()[0] > fig.get_size_inches()[1]  # a readable landscape grid
    # one scale and one colour bar for the whole grid, marking the operations' uniform 1/7
    bars = colour_bars(fig)
    assert len(bars) == 1 and marked_values(bars[0]) == pytest.approx([1 / 7])
    value = history["prob_normal_edge"][0, 0, 0]
    for ax in heatmap_axes(fig):
        assert ax.images[0].norm.vmin == 0.0 and ax.images[0].norm.vmax == 1.0
    first = axis(fig, "normal, epoch 1")
    np.testing.assert_allclose(drawn_colours(first)[0, 0], colour_of(value), atol=1e-6)


def test_small_multiples_colour_the_same_value_alike_in_every_epoch():
    """A value keeps its colour from one epoch to the next, even when the rest of its node changes."""
    epochs = 3
    a = np.array([0.4, 0.2, 0.1, 0.1, 0.1, 0.05, 0.05])
    b = np.array([0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])
    history = {"epoch": np.arange(1, epochs + 1)}
    for cell in CNN_SPACE.cell_types:
        history[f"prob_{cell}_edge"] = np.stack([np.tile(v, (14, 1)) for v in (a, b, np.full(7, 1 / 7))])
    fig = policy_small_multiples(history)
    first, second = drawn_colours(axis(fig, "normal, epoch 1")), drawn_colours(axis(fig, "normal, epoch 2"))
    np.testing.assert_allclose(first[0, 1], second[0, 0], atol=1e-6)  # 0.2 in both
    np.testing.assert_allclose(first[0, 2], second[0, 3], atol=1e-6)  # 0.1 in both
    np.testing.assert_allclose(drawn_colours(axis(fig, "normal, epoch 3")).reshape(-1, 4),
                               np.tile(colour_of(1 / 7), (14 * 7, 1)), atol=1e-6)


def test_mlflow_heatmap_artifacts_use_the_same_scale():
    """The figure MLflowPolicyFigures logs is policy_heatmaps': fixed scale, colour bars, uniform marks."""
    from ednas_core.search import EpochReport
    from ednas_core.tracking import MLflowPolicyFigures

    class Run:  # what the callback needs of a StageRun; looks at the figure before the callback clears it
        def log_figure(self, figure, path):
            self.path, self.bars = path, [marked_values(b) for b in colour_bars(figure)]
            self.colours = drawn_colours(axis(figure, "normal cell: operation policy"))

    run = Run()
    probs = peaked_policy()
    MLflowPolicyFigures(run, every=1).on_epoch_end(EpochReport(0, 1, {}, probs, {}))
    assert run.path == "figures/policy_epoch_0001.png"
    assert sorted(run.bars, key=len) == [pytest.approx([1 / 7]), pytest.approx([0.1, 1 / 6, 1 / 3, 1.0])]
    np.testing.assert_allclose(run.colours[0, 0], colour_of(probs["normal_edge"][0, 0]), atol=1e-6)


def test_save_figure_writes_png_and_svg(tmp_path):
    paths = save_figure(policy_heatmaps(probabilities(CNN_SPACE)), tmp_path / "sub" / "policy")
    assert [p.name for p in paths] == ["policy.png", "policy.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and paths[0].stat().st_size > 10_000
    assert b"<svg" in paths[1].read_bytes()[:2000]
