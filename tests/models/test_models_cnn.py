"""The evaluation network built from a genotype (EDNAS_SPEC.md s.6, s.7): parameter count of the paper's
CIFAR-10 cell, auxiliary head, drop path, and only the genotype's ops instantiated."""

import pytest
import torch

from ednas_core.cnn_cell import CELL
from ednas_core.genotypes import PAPER_GENOTYPES, from_architecture, to_architecture
from ednas_core.models.cnn import EvalNetwork, count_parameters

CIFAR = PAPER_GENOTYPES["paper-cifar10"]


def _net(genotype=CIFAR, **kw):
    torch.manual_seed(0)
    kw = {"init_channels": 4, "layers": 5, "num_classes": 10, **kw}
    return EvalNetwork(genotype, **kw)


def test_paper_cifar10_parameter_count():
    net = EvalNetwork(CIFAR, 36, 20)
    n = count_parameters(net)
    assert abs(n - 3.72e6) < 0.01e6  # the paper reports 3.7M
    with_aux = count_parameters(net, exclude_auxiliary=False)
    assert with_aux > n
    assert with_aux - n == sum(p.numel() for p in net.auxiliary_head.parameters())
    no_aux = EvalNetwork(CIFAR, 36, 20, auxiliary=False)
    assert no_aux.auxiliary_head is None
    assert count_parameters(no_aux) == count_parameters(no_aux, exclude_auxiliary=False) == n


def test_rejects_an_rnn_genotype():
    with pytest.raises(ValueError, match="CNN genotype"):
        EvalNetwork(PAPER_GENOTYPES["paper-ptb"], 4, 5)


def test_train_mode_returns_aux_logits_eval_mode_does_not():
    net = _net()
    x = torch.randn(3, 3, 16, 16)
    net.train()
    logits, aux = net(x)
    assert logits.shape == (3, 10) and aux is not None and aux.shape == (3, 10)
    (logits.logsumexp(-1).sum() + 0.4 * aux.logsumexp(-1).sum()).backward()
    assert all(p.grad is not None for p in net.auxiliary_head.parameters())
    net.eval()
    with torch.no_grad():
        logits, aux = net(x)
    assert logits.shape == (3, 10) and aux is None
    no_aux = _net(auxiliary=False).train()
    assert no_aux(x)[1] is None


def test_aux_head_sits_after_the_cell_at_two_thirds():
    net = _net(layers=8)
    assert net.aux_index == 5 and net.cells[5].reduction


def test_drop_path_randomises_training_and_is_off_in_eval():
    net = _net()
    x = torch.randn(4, 3, 16, 16)
    net.drop_path_prob = 0.3
    net.train()
    torch.manual_seed(1)
    a, _ = net(x)
    torch.manual_seed(2)
    b, _ = net(x)
    assert not torch.allclose(a, b)
    torch.manual_seed(1)
    a_again, _ = net(x)
    assert torch.equal(a, a_again)

    net.eval()
    with torch.no_grad():
        torch.manual_seed(1)
        c, _ = net(x)
        torch.manual_seed(2)
        d, _ = net(x)
        net.drop_path_prob = 0.0
        e, _ = net(x)
    assert torch.equal(c, d) and torch.equal(c, e)


def test_drop_path_zero_in_train_mode_is_deterministic():
    net = _net()
    x = torch.randn(2, 3, 16, 16)
    net.train()
    torch.manual_seed(1)
    a, _ = net(x)
    torch.manual_seed(2)
    b, _ = net(x)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["paper-cifar10", "paper-imagenet"])
def test_only_the_genotypes_ops_are_instantiated(name):
    genotype = PAPER_GENOTYPES[name]
    arch = to_architecture(genotype)
    net = _net(genotype)
    op_names = [n for n, _ in net.named_modules()
                if n.startswith("cells.") and n.count(".") == 4 and ".edges." in n]
    for c, cell in enumerate(net.cells):
        cell_type = "reduce" if cell.reduction else "normal"
        expected = {f"cells.{c}.edges.{CELL.edge_id(node, pred)}.{CELL.ops[op]}"
                    for node, pairs in zip(CELL.node_ids, arch[cell_type]) for pred, op in pairs}
        got = {n for n in op_names if n.startswith(f"cells.{c}.")}
        assert len(expected) == 8
        assert got == expected
    assert len(op_names) == 8 * 5


def test_forward_runs_every_instantiated_op_once():
    net = _net().eval()
    calls = []
    for n, m in net.named_modules():
        if n.startswith("cells.") and n.count(".") == 4 and ".edges." in n:
            m.register_forward_hook(lambda mod, i, o, n=n: calls.append(n))
    with torch.no_grad():
        net(torch.randn(2, 3, 16, 16))
    assert len(calls) == len(set(calls)) == 40


def test_normal_and_reduce_cells_differ_when_the_genotype_differs():
    genotype = from_architecture(
        CIFAR.search_space,
        {"normal": (((0, 3), (1, 3)),) + to_architecture(CIFAR)["normal"][1:],
         "reduce": (((0, 0), (1, 0)),) + to_architecture(CIFAR)["reduce"][1:]},
    )
    net = _net(genotype)
    assert set(net.cells[0].edges["0"]) == {"sep_conv_3x3"}
    assert set(net.cells[1].edges["0"]) == {"max_pool_3x3"}


def test_single_channel_8x8_images():
    for layers in (3, 5):
        net = _net(in_channels=1, layers=layers, num_classes=4).train()
        net.drop_path_prob = 0.2
        x = torch.randn(2, 1, 8, 8)
        logits, aux = net(x)
        assert logits.shape == (2, 4) and aux.shape == (2, 4)
        (logits.sum() + aux.sum()).backward()
        net.eval()
        with torch.no_grad():
            assert net(x)[0].shape == (2, 4)


@pytest.mark.parametrize("size", [(8, 8), (16, 16), (32, 32), (48, 48), (64, 40)])
def test_aux_head_adapts_to_the_feature_map_size(size):
    net = _net(layers=5).train()
    logits, aux = net(torch.randn(2, 3, *size))
    assert logits.shape == (2, 10) and aux.shape == (2, 10)


def test_aux_head_does_not_change_the_main_logits():
    """The head's in-place ReLU must not alter the features the next cells read."""
    with_aux = _net()
    without = _net(auxiliary=False)
    without.load_state_dict({k: v for k, v in with_aux.state_dict().items() if not k.startswith("auxiliary_head")})
    x = torch.randn(2, 3, 16, 16)
    with_aux.train()
    without.train()
    assert torch.allclose(with_aux(x)[0], without(x)[0])
