"""Policy heatmaps (paper Figure 4): shapes, labels, printed values and per-destination colour normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ednas_core.ops import CNN_OPS
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.spaces.rnn import RNN_ACTIVATIONS
from ednas_core.viz import policy_heatmaps, policy_small_multiples, save_figure, select_epochs
from ednas_core.viz.heatmaps import normalise_groups


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


def test_edge_colours_are_normalised_per_destination_node():
    probs = probabilities(CNN_SPACE, seed=3)
    ax = axis(policy_heatmaps(probs), "normal cell: operation policy")
    image = np.asarray(ax.images[0].get_array())
    values = probs["normal_edge"]
    assert ax.images[0].norm.vmin == 0.0 and ax.images[0].norm.vmax == 1.0
    for node in CNN_SPACE.cell.node_ids:
        rows = [e for e, (_, dst) in enumerate(CNN_SPACE.cell.edges) if dst == node]
        group = image[rows]
        # the largest probability entering the node is at the top of the colormap, the smallest at the bottom
        assert group.max() == pytest.approx(1.0) and group.min() == pytest.approx(0.0)
        assert np.unravel_index(group.argmax(), group.shape) == np.unravel_index(values[rows].argmax(), group.shape)
        np.testing.assert_allclose(group, (values[rows] - values[rows].min()) / np.ptp(values[rows]), atol=1e-6)


def test_cnn_node_heatmap_has_shared_combination_columns_and_blank_masked_entries():
    probs = probabilities(CNN_SPACE, seed=1)
    ax = axis(policy_heatmaps(probs), "reduce cell: input policy")
    image = ax.images[0].get_array()
    assert image.shape == (4, 10)
    assert ticklabels(ax, "x") == ["(0,1)", "(0,2)", "(0,3)", "(0,4)", "(1,2)", "(1,3)", "(1,4)", "(2,3)", "(2,4)",
                                   "(3,4)"]
    assert ticklabels(ax, "y") == ["node 2", "node 3", "node 4", "node 5"]
    mask = np.ma.getmaskarray(image)
    assert mask.sum(axis=1).tolist() == [9, 7, 4, 0]  # 1, 3, 6 and 10 combinations
    assert not mask[1, [0, 1, 4]].any() and mask[1, [2, 3, 5]].all()  # node 3: (0,1), (0,2), (1,2)
    # values printed for the valid entries only, node by node in the node's own combination order
    node = probs["reduce_node"]
    expected = ["1.00"] + [f"{v:.2f}" for k in (1, 2, 3) for v in node[k, : (3, 6, 10)[k - 1]]]
    assert sorted(printed(ax)) == sorted(expected)
    for row in range(1, 4):  # each node is its own destination group
        valid = np.asarray(image[row])[~mask[row]]
        assert valid.max() == pytest.approx(1.0) and valid.min() == pytest.approx(0.0)


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


def test_normalise_groups_constant_group_maps_to_top():
    out = normalise_groups(np.array([[0.2, 0.8], [0.5, 0.5], [1.0, np.nan]]), [0, 1, 2])
    np.testing.assert_allclose(out[0], [0.0, 1.0])
    np.testing.assert_allclose(out[1], [1.0, 1.0])
    assert out[2, 0] == 1.0 and np.isnan(out[2, 1])


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
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [f"{c}, epoch {e}" for c in ("normal", "reduce") for e in (1, 5, 9, 12, 16, 20)]
    ax = axis(fig, "reduce, epoch 12")
    assert ax.images[0].get_array().shape == (14, 7)
    assert printed(ax) == [f"{v:.2f}" for v in history["prob_reduce_edge"][11].ravel()]
    assert fig.get_size_inches()[0] > fig.get_size_inches()[1]  # a readable landscape grid


def test_save_figure_writes_png_and_svg(tmp_path):
    paths = save_figure(policy_heatmaps(probabilities(CNN_SPACE)), tmp_path / "sub" / "policy")
    assert [p.name for p in paths] == ["policy.png", "policy.svg"]
    assert paths[0].read_bytes().startswith(b"\x89PNG") and paths[0].stat().st_size > 10_000
    assert b"<svg" in paths[1].read_bytes()[:2000]
