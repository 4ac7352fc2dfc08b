"""Cell diagrams of genotypes (paper Figures 6 and 8): every op label drawn, inputs/outputs, files, determinism."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from ednas_core.genotypes import PAPER_GENOTYPES, from_architecture
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.spaces import CNN_SPACE
from ednas_core.viz import cell_diagram, genotype_diagrams, save_figure


def texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


@pytest.mark.parametrize("name", ["paper-cifar10", "paper-imagenet"])
def test_cnn_diagrams_label_every_edge_with_its_op(name):
    genotype = PAPER_GENOTYPES[name]
    figs = genotype_diagrams(genotype, name)
    assert list(figs) == ["normal", "reduce"]
    for cell_type, fig in figs.items():
        drawn = Counter(texts(fig))
        for op, count in Counter(op for op, _ in genotype.cells[cell_type]).items():
            assert drawn[op] == count, (cell_type, op)
        assert {"$c_{k-2}$", "$c_{k-1}$", "$c_{k}$", "0", "1", "2", "3"} <= set(drawn)
        assert fig.axes[0].get_title() == f"{name}: {cell_type} cell"
        # 8 op edges + 4 dashed connections to the output
        assert len([p for p in fig.axes[0].patches if type(p).__name__ == "FancyArrowPatch"]) == 12


def test_rnn_diagram_labels_every_activation():
    genotype = PAPER_GENOTYPES["paper-ptb"]
    fig = cell_diagram(genotype, "recurrent")
    drawn = Counter(texts(fig))
    for act, count in Counter(act for act, _ in genotype.cells["recurrent"]).items():
        expected = count + (1 if act == "tanh" else 0)  # node 0 is tanh(x_t, h_{t-1}), fixed
        assert drawn[act] == expected, act
    assert {"$x_t$", "$h_{t-1}$", "$h_t$"} <= set(drawn)
    assert {str(i) for i in range(9)} <= set(drawn)
    assert any("mean" in t for t in drawn)


def test_sampled_genotype_diagram_and_deterministic_files(tmp_path):
    vectors = PolicyVectors(CNN_SPACE, init_std=1.0, generator=torch.Generator().manual_seed(5))
    genotype = from_architecture(CNN_SPACE, vectors.sample(torch.Generator().manual_seed(1)))
    fig = cell_diagram(genotype, "reduce")
    assert Counter(op for op, _ in genotype.cells["reduce"]) <= Counter(texts(fig))
    first = save_figure(fig, tmp_path / "a" / "cell")
    second = save_figure(cell_diagram(genotype, "reduce"), tmp_path / "b" / "cell")
    for a, b in zip(first, second):
        assert a.stat().st_size > 5_000
        assert a.read_bytes() == b.read_bytes(), a.name  # same genotype, same file (no dates, fixed SVG ids)
    assert b"<svg" in first[1].read_bytes()[:2000]


def test_unknown_cell_type_is_refused():
    with pytest.raises(ValueError, match="no 'recurrent' cell"):
        cell_diagram(PAPER_GENOTYPES["paper-cifar10"], "recurrent")


def _edge_label_sizes(fig, labels):
    return [t.get_fontsize() for ax in fig.axes for t in ax.texts if t.get_text() in labels]


def test_wide_diagrams_enlarge_their_text_so_it_reads_at_the_reports_width():
    """A report shrinks a figure wider than its column (READING_WIDTH_IN), text included: the recurrent cell's
    9 nodes in a row make it wider than that, so its text grows with its width, and every edge label reads at
    9 points or more once shrunk; the CNN cell fits the column and keeps its sizes."""
    from ednas_core.viz.cells import READING_WIDTH_IN, text_scale

    rnn = cell_diagram(PAPER_GENOTYPES["paper-ptb"], "recurrent")
    cnn = cell_diagram(PAPER_GENOTYPES["paper-cifar10"], "normal")
    rnn_w, cnn_w = rnn.get_figwidth(), cnn.get_figwidth()
    assert rnn_w > READING_WIDTH_IN >= cnn_w  # the figure is as wide as its row of nodes
    assert text_scale(cnn_w) == 1.0 and text_scale(rnn_w) == pytest.approx(rnn_w / READING_WIDTH_IN)
    acts = {act for act, _ in PAPER_GENOTYPES["paper-ptb"].cells["recurrent"]}
    rnn_sizes = _edge_label_sizes(rnn, acts)
    assert rnn_sizes and min(rnn_sizes) * READING_WIDTH_IN / rnn_w >= 9.0 - 1e-9  # as shown in the report
    ops = {op for op, _ in PAPER_GENOTYPES["paper-cifar10"].cells["normal"]}
    assert min(_edge_label_sizes(cnn, ops)) == 9.0
    assert rnn.axes[0].get_title() and rnn.axes[0].title.get_fontsize() > cnn.axes[0].title.get_fontsize()
    arrows = [p for p in rnn.axes[0].patches if type(p).__name__ == "FancyArrowPatch"]
    assert min(a.get_mutation_scale() for a in arrows) > 13  # arrow heads grow with the text
