"""Figures and tracking JSON of NAS-Bench-201 searches: the heatmaps, small multiples and sampling histograms
render nb201 arrays (node rows over their own subsets, '()' for no input), cell diagrams draw only the edges that
are not `none` with node 3 as the output, and policy_json labels the nb201 arrays."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch

from ednas_core.genotypes import from_architecture
from ednas_core.spaces import NB201_SPACE, from_nb201_string
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.tracking import _policy_space, counts_json, policy_json
from ednas_core.viz import (cell_diagram, genotype_diagrams, policy_heatmaps, policy_small_multiples,
                            sampling_histograms, save_figure)
from ednas_core.viz._common import space_of

CELL = NB201_SPACE.cell
EXAMPLE = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
SPARSE = "|none~0|+|nor_conv_1x1~0|none~1|+|avg_pool_3x3~0|none~1|none~2|"


def probabilities(seed=0):
    return PolicyVectors(NB201_SPACE, init_std=1.0, generator=torch.Generator().manual_seed(seed)).probabilities()


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def axis(fig, title):
    found = [ax for ax in fig.axes if ax.get_title() == title]
    assert len(found) == 1, [ax.get_title() for ax in fig.axes]
    return found[0]


def test_the_arrays_name_the_nb201_space():
    probs = probabilities()
    assert space_of(probs) is NB201_SPACE and _policy_space(probs) is NB201_SPACE
    assert space_of({"counts_cell": np.zeros((2, 6, 4))}) is NB201_SPACE


def test_policy_heatmaps_label_subsets_with_the_empty_one(tmp_path):
    probs = probabilities()
    fig = policy_heatmaps(probs, epoch=3)
    edge_ax, node_ax = axis(fig, "cell: operation policy"), axis(fig, "cell: input policy")
    assert [t.get_text() for t in edge_ax.get_yticklabels()] == ["0->1", "0->2", "1->2", "0->3", "1->3", "2->3"]
    assert [t.get_text() for t in edge_ax.get_xticklabels()] == list(CELL.ops)
    columns = [t.get_text() for t in node_ax.get_xticklabels()]
    assert columns == ["()", "0", "1", "2", "(0,1)", "(0,2)", "(1,2)", "(0,1,2)"]
    assert [t.get_text() for t in node_ax.get_yticklabels()] == ["node 1 (uniform 1/2)", "node 2 (uniform 1/4)",
                                                                  "node 3 (uniform 1/8)"]
    assert "subset" in node_ax.get_xlabel()
    # node 1's two subsets are printed in their shared columns, the rest of its row is blank
    assert f"{probs['cell_node'][0, 0]:.2f}" in [t.get_text() for t in node_ax.texts]
    assert len(node_ax.texts) == 2 + 4 + 8
    written = save_figure(fig, tmp_path / "policy")
    assert all(p.stat().st_size > 5_000 for p in written)


def test_small_multiples_and_sampling_histograms_render(tmp_path):
    history = {f"prob_{k}": np.stack([probabilities(s)[k] for s in range(4)]) for k in ("cell_node", "cell_edge")}
    fig = policy_small_multiples(history)
    assert {ax.get_title() for ax in fig.axes} >= {"cell, epoch 1", "cell, epoch 4"}
    counts = {"counts_cell": np.random.default_rng(0).integers(0, 6, (12, 6, 4))}
    hist = sampling_histograms(counts)
    titles = {ax.get_title() for ax in hist.axes}
    assert {"edges sampled (cell)", "operations sampled (cell)"} <= titles
    for figure, name in ((fig, "multiples"), (hist, "hist")):
        assert save_figure(figure, tmp_path / name, formats=("png",))[0].stat().st_size > 5_000


@pytest.mark.parametrize("text", [EXAMPLE, SPARSE])
def test_cell_diagram_draws_only_the_edges_that_are_not_none(text):
    genotype = from_architecture(NB201_SPACE, from_nb201_string(text))
    figs = genotype_diagrams(genotype, "nb201")
    assert list(figs) == ["cell"]
    fig = figs["cell"]
    assert fig.axes[0].get_title() == "nb201: cell"
    drawn = Counter(texts(fig))
    present = [op for op, _ in genotype.cells["cell"] if op != "none"]
    for op, count in Counter(present).items():
        assert drawn[op] == count, op
    assert drawn["none"] == 0
    assert {"$c_{k-1}$", "$c_{k}$", "1", "2", "3"} <= set(drawn)
    assert any("node 3" in t for t in drawn)  # the caption: the output is node 3
    arrows = [p for p in fig.axes[0].patches if type(p).__name__ == "FancyArrowPatch"]
    assert len(arrows) == len(present) + 1  # the present edges and node 3 -> output


def test_a_node_without_inputs_is_drawn_grey():
    genotype = from_architecture(NB201_SPACE, from_nb201_string(SPARSE))  # node 1 has no input edge
    fig = cell_diagram(genotype, "cell")
    circles = {t.get_text(): t for t in fig.axes[0].texts if t.get_text() in ("1", "2", "3")}
    faces = {p.get_facecolor()[:3] for p in fig.axes[0].patches if type(p).__name__ == "Circle"}
    assert len(circles) == 3 and len(faces) == 2  # two colours: fed nodes and the zero node


def test_policy_json_labels_nb201_nodes_subsets_and_edges():
    probs = probabilities(3)
    policy = json.loads(json.dumps(policy_json(probs)))
    assert set(policy) == {"cell_node", "cell_edge"}
    nodes = policy["cell_node"]
    assert list(nodes) == ["node 1", "node 2", "node 3"]
    assert list(nodes["node 1"]) == ["()", "0"]
    assert list(nodes["node 2"]) == ["()", "0", "1", "(0,1)"]
    assert list(nodes["node 3"]) == ["()", "0", "1", "2", "(0,1)", "(0,2)", "(1,2)", "(0,1,2)"]
    for k, row in enumerate(nodes.values()):  # the node's own subsets, no padding, summing to 1
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)
        assert row["()"] == round(float(probs["cell_node"][k, 0]), 6)
    edges = policy["cell_edge"]
    assert list(edges) == ["0->1", "0->2", "1->2", "0->3", "1->3", "2->3"]
    assert list(edges["1->3"]) == list(CELL.ops)  # the op given the edge is present: no 'none' column
    assert edges["1->3"]["nor_conv_3x3"] == round(float(probs["cell_edge"][4, 2]), 6)
    counts = counts_json({"cell": np.arange(24).reshape(6, 4)}, NB201_SPACE)
    assert counts["cell_counts"]["2->3"] == {"skip_connect": 20, "nor_conv_1x1": 21, "nor_conv_3x3": 22,
                                             "avg_pool_3x3": 23}
