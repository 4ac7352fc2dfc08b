"""The weight-sharing recurrent network: the highway-cell math, only sampled edges run, tied decoder, dropouts."""

from __future__ import annotations

import pytest
import torch

from ednas_core.genotypes import PAPER_GENOTYPES, to_architecture
from ednas_core.spaces import RNN_SPACE
from ednas_core.supernet.rnn import RNNSearchNetwork, activation_regularisation, edge_key

V, H = 11, 6
ARCH = to_architecture(PAPER_GENOTYPES["paper-ptb"])


def make_net(**dropouts) -> RNNSearchNetwork:
    torch.manual_seed(0)
    return RNNSearchNetwork(V, H, H, **{"dropout": 0.0, "dropouth": 0.0, "dropoutx": 0.0, "dropouti": 0.0,
                                         "dropoute": 0.0, **dropouts})


def hand_step(net: RNNSearchNetwork, token: torch.Tensor, h: torch.Tensor, arch) -> torch.Tensor:
    """One time step written out from the definition, with the genotype's (activation, input) pairs."""
    acts = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda z: z}
    x = net.encoder.weight[token]
    c0, h0 = torch.cat([x, h], dim=1).mm(net.w0).chunk(2, dim=1)
    states = [h + torch.sigmoid(c0) * (torch.tanh(h0) - h)]
    for node, ((pred, op),) in enumerate(arch["recurrent"], start=1):
        s = states[pred]
        c, hh = s.mm(net.edge_weights[edge_key(pred, node)]).chunk(2, dim=1)
        states.append(s + torch.sigmoid(c) * (acts[RNN_SPACE.cell.ops[op]](hh) - s))
    return torch.stack(states[1:]).mean(0)


def test_cell_matches_the_hand_written_step():
    net = make_net(dropout=0.5, dropouth=0.5, dropoutx=0.5, dropouti=0.5, dropoute=0.5).eval()
    tokens = torch.tensor([[1, 4, 7], [2, 2, 9]])  # [T=2, B=3]
    h_init = torch.randn(3, H)
    with torch.no_grad():
        logits, h_last = net(tokens, h_init, ARCH)
        h1 = hand_step(net, tokens[0], h_init, ARCH)
        h2 = hand_step(net, tokens[1], h1, ARCH)
        expected = torch.stack([h1, h2]) @ net.encoder.weight.t() + net.decoder_bias
    torch.testing.assert_close(h_last, h2)
    torch.testing.assert_close(logits, expected)
    assert logits.shape == (2, 3, V)


def test_only_the_sampled_edges_get_gradients():
    net = make_net()
    arch = RNN_SPACE.validate({"recurrent": tuple(((k % 3, k % 4),) for k in range(8))})
    logits, _ = net(torch.randint(0, V, (4, 2)), net.init_hidden(2), arch)
    logits.sum().backward()
    used = {edge_key(pred, node) for node, ((pred, _),) in zip(RNN_SPACE.cell.node_ids, arch["recurrent"])}
    assert len(net.edge_weights) == 36 and len(used) == 8
    for key, w in net.edge_weights.items():
        assert (w.grad is not None) == (key in used), key
    assert net.w0.grad is not None and net.encoder.weight.grad is not None


def test_decoder_is_tied_to_the_embedding_and_init_ranges():
    net = make_net()
    names = {n for n, _ in net.named_parameters()}
    assert names == {"encoder.weight", "w0", "decoder_bias"} | {f"edge_weights.{k}" for k in net.edge_weights}
    assert net.w0.abs().max() <= 0.04 and net.encoder.weight.abs().max() <= 0.1
    assert net.w0.shape == (2 * H, 2 * H) and net.edge_weights["e0_1"].shape == (H, 2 * H)
    with pytest.raises(ValueError, match="emb must equal hidden"):
        RNNSearchNetwork(V, 4, 6)


def test_dropouts_act_only_in_training_and_are_seeded():
    net = make_net(dropout=0.5, dropouth=0.3, dropoutx=0.3, dropouti=0.2, dropoute=0.1)
    tokens, h = torch.randint(0, V, (5, 3)), torch.zeros(3, H)
    with torch.no_grad():
        torch.manual_seed(1)
        a, _ = net(tokens, h, ARCH)
        torch.manual_seed(1)
        b, _ = net(tokens, h, ARCH)
        net.eval()
        c, _ = net(tokens, h, ARCH)
        plain = make_net().train()
        d, _ = plain(tokens, h, ARCH)
    assert torch.equal(a, b) and not torch.allclose(a, c)
    torch.testing.assert_close(c, d)  # without dropout, training and evaluation compute the same


def test_output_dropout_mask_is_shared_over_time_steps():
    torch.manual_seed(0)
    net = RNNSearchNetwork(H, H, H, dropout=0.5, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0)
    with torch.no_grad():
        net.encoder.weight.copy_(torch.eye(H))  # the tied decoder then returns the dropped-out h_t itself
    tokens = torch.randint(0, H, (6, 4))
    with torch.no_grad():
        logits, _ = net(tokens, net.init_hidden(4), ARCH)
    zeros = logits == 0
    assert zeros.any() and not zeros.all()
    assert torch.equal(zeros, zeros[:1].expand_as(zeros))  # the same units dropped at every time step


def test_returned_outputs_are_the_cell_states_before_and_after_output_dropout():
    torch.manual_seed(0)
    net = RNNSearchNetwork(V, H, H, dropout=0.5, dropouth=0.0, dropoutx=0.0, dropouti=0.0, dropoute=0.0)
    tokens = torch.randint(0, V, (5, 3))
    h = net.init_hidden(3)
    logits, last, raw, dropped = net(tokens, h, ARCH, return_outputs=True)
    for t in range(5):
        h = hand_step(net, tokens[t], h, ARCH)
        assert torch.allclose(raw[t], h, atol=1e-6)
    assert torch.equal(last, raw[-1])
    kept = dropped != 0
    assert torch.allclose(dropped[kept], 2 * raw[kept])  # inverted dropout, p = 0.5
    assert torch.allclose(logits, dropped @ net.encoder.weight.t() + net.decoder_bias, atol=1e-6)


def test_activation_regularisation_matches_its_definition():
    raw = torch.tensor([[[1.0, 2.0]], [[2.0, 0.0]], [[4.0, 1.0]]])  # [T=3, B=1, H=2]
    dropped = 2 * raw
    # AR: mean of dropped^2 = (4+16+16+0+64+4)/6 = 104/6; TAR: diffs (1,-2), (2,1) -> (1+4+4+1)/4 = 2.5
    assert activation_regularisation(raw, dropped, 0.5, 0.0).item() == pytest.approx(0.5 * 104 / 6)
    assert activation_regularisation(raw, dropped, 0.0, 0.1).item() == pytest.approx(0.25)
    assert activation_regularisation(raw, dropped, 0.5, 0.1).item() == pytest.approx(0.5 * 104 / 6 + 0.25)
    assert activation_regularisation(raw[:1], dropped[:1], 0.0, 0.1).item() == 0.0  # one step: no TAR
