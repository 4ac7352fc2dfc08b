"""The PTB evaluation network: the paper's size (about 23M parameters), only the genotype's edges, defaults."""

from __future__ import annotations

import pytest
import torch

from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.models.rnn import RNNEvalNetwork, count_parameters
from ednas_core.supernet.rnn import edge_key

PTB = PAPER_GENOTYPES["paper-ptb"]


def test_paper_ptb_network_has_about_23m_parameters():
    net = RNNEvalNetwork(PTB, 10_000)
    n = count_parameters(net)
    # tied embedding/decoder 10000x850, decoder bias, W0 1700x1700, eight 850x1700 edge matrices
    assert n == 10_000 * 850 + 10_000 + 1700 * 1700 + 8 * 850 * 1700
    assert abs(n - 23e6) < 0.1e6
    assert (net.dropout, net.dropouth, net.dropoutx, net.dropouti, net.dropoute) == (0.75, 0.25, 0.75, 0.2, 0.1)


def test_only_the_genotype_edges_exist_and_forward_uses_them():
    torch.manual_seed(0)
    net = RNNEvalNetwork(PTB, 20, emb=8, hidden=8).eval()
    expected = {edge_key(inp, node) for node, (_, inp) in enumerate(PTB.cells["recurrent"], start=1)}
    assert set(net.edge_weights) == expected
    tokens = torch.randint(0, 20, (3, 2))
    logits, hidden = net(tokens, net.init_hidden(2))
    assert logits.shape == (3, 2, 20) and hidden.shape == (2, 8)
    logits.sum().backward()
    assert all(w.grad is not None for w in net.edge_weights.values())


def test_refuses_a_cnn_genotype():
    with pytest.raises(ValueError, match="rnn genotype"):
        RNNEvalNetwork(PAPER_GENOTYPES["paper-cifar10"], 20, emb=8, hidden=8)
