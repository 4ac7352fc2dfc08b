"""The NAS-Bench-201 weight-sharing network: the benchmark's skeleton (stages, ResNet blocks, shapes), every edge
holding the four candidate ops, exactly the sampled ops run and receive gradients, a node without edges is zero,
the fixed network of one architecture equals the supernet with the shared weights, op selection from host ints."""

import pytest
import torch

from ednas_core.spaces import NB201_SPACE, from_nb201_string
from ednas_core.strategies.base import uniform_architecture
from ednas_core.supernet.nb201 import ALL_OPS, NB201Cell, NB201SearchNetwork, ResNetBlock

CELL = NB201_SPACE.cell
BEST = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def _net(c=4, n=1, **kw):
    torch.manual_seed(0)
    return NB201SearchNetwork(init_channels=c, cells_per_stage=n, num_classes=10, **kw)


def _archs(count, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [uniform_architecture(NB201_SPACE, g) for _ in range(count)]


def _op_modules(net):
    """The candidate op modules: cells.<c>.edges.<e>.<op>."""
    return {n: m for n, m in net.named_modules() if n.startswith("cells.") and n.count(".") == 4 and ".edges." in n}


def _expected_modules(net, arch):
    names = set()
    for c, module in enumerate(net.cells):
        if isinstance(module, NB201Cell):
            for node, pairs in zip(CELL.node_ids, arch["cell"]):
                for pred, op in pairs:
                    names.add(f"cells.{c}.edges.{CELL.edge_id(node, pred)}.{CELL.ops[op]}")
    return names


def test_skeleton_stages_and_shapes():
    net = _net(c=4, n=2)
    kinds = [type(m).__name__ for m in net.cells]
    assert kinds == ["NB201Cell"] * 2 + ["ResNetBlock"] + ["NB201Cell"] * 2 + ["ResNetBlock"] + ["NB201Cell"] * 2
    seen = {}
    hooks = [m.register_forward_hook(lambda m, i, o, k=k: seen.__setitem__(k, tuple(o.shape)))
             for k, m in enumerate(net.cells)]
    out = net(torch.randn(3, 3, 8, 8), from_nb201_string(BEST))
    for h in hooks:
        h.remove()
    assert out.shape == (3, 10)
    assert seen[0] == seen[1] == (3, 4, 8, 8)
    assert seen[2] == seen[4] == (3, 8, 4, 4)
    assert seen[5] == seen[7] == (3, 16, 2, 2)
    assert net.stem[0].out_channels == 4 and net.classifier.in_features == 16
    block = net.cells[2]
    assert isinstance(block, ResNetBlock) and block.conv_a[1].stride == (2, 2)
    assert isinstance(block.downsample[0], torch.nn.AvgPool2d) and block.downsample[1].kernel_size == (1, 1)


def test_in_channels_and_classes():
    net = NB201SearchNetwork(init_channels=4, cells_per_stage=1, num_classes=7, in_channels=1)
    assert net(torch.randn(2, 1, 8, 8), _archs(1)[0]).shape == (2, 7)


def test_every_edge_holds_all_four_ops_with_non_affine_bn():
    net = _net(n=2)
    assert len(_op_modules(net)) == 3 * 2 * 6 * 4
    for module in net.cells:
        if isinstance(module, NB201Cell):
            assert set(module.edges) == {str(e) for e in range(6)}
            for e in range(6):
                assert tuple(module.edges[str(e)]) == CELL.ops
    for name, m in net.named_modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            in_cell = ".edges." in name
            assert m.affine == (not in_cell) and m.track_running_stats, name


def test_forward_runs_exactly_the_sampled_ops():
    net = _net(n=2)
    net.eval()
    called = []
    for name, module in _op_modules(net).items():
        module.register_forward_hook(lambda m, i, o, name=name: called.append(name))
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        for arch in _archs(30, seed=1):
            called.clear()
            net(x, arch)
            expected = _expected_modules(net, arch)
            assert len(called) == len(set(called)) and set(called) == expected


def _grads_after_backward(net, arch):
    net.zero_grad(set_to_none=True)
    net(torch.randn(2, 3, 8, 8), arch).logsumexp(-1).sum().backward()
    return {name: [p.grad is not None for p in module.parameters()] for name, module in _op_modules(net).items()}


def test_backward_reaches_only_sampled_ops():
    net = _net(n=2)
    for arch in _archs(10, seed=2):  # a sampled op off every path to node 3 runs but gets no gradient either
        expected = _expected_modules(net, arch)
        for name, has_grad in _grads_after_backward(net, arch).items():
            if name not in expected:
                assert not any(has_grad), name
    # every edge selected: every sampled op with parameters (the convolutions) lies on a path to the output
    arch = from_nb201_string("|nor_conv_1x1~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|avg_pool_3x3~0|nor_conv_1x1~1|"
                             "nor_conv_3x3~2|")
    expected = _expected_modules(net, arch)
    grads = _grads_after_backward(net, arch)
    assert all(all(has_grad) for name, has_grad in grads.items() if name in expected)
    assert not any(any(has_grad) for name, has_grad in grads.items() if name not in expected)
    assert sum(len(grads[name]) for name in expected) == 6 * 5  # 5 convs per cell, 6 cells
    for p in list(net.stem.parameters()) + list(net.classifier.parameters()) + list(net.cells[2].parameters()):
        assert p.grad is not None


def test_node_without_edges_is_zero():
    cell = NB201Cell(4, ALL_OPS)
    x = torch.randn(2, 4, 8, 8)
    # node 1 takes nothing; node 3 takes only node 1 (skip) and so is zero too; node 2 is unused
    arch = from_nb201_string("|none~0|+|nor_conv_3x3~0|skip_connect~1|+|none~0|skip_connect~1|none~2|")["cell"]
    out = cell(x, arch)
    assert out.shape == x.shape and torch.equal(out, torch.zeros_like(x))
    # a cell that leaves the output node empty makes the logits independent of the input (eval mode)
    net = _net(n=1)
    net.eval()
    none = from_nb201_string("|nor_conv_3x3~0|+|skip_connect~0|nor_conv_1x1~1|+|none~0|none~1|none~2|")
    logits = net(torch.randn(3, 3, 8, 8), none)
    assert torch.allclose(logits[0], logits[1]) and torch.allclose(logits[0], logits[2])


@pytest.mark.parametrize("arch_string", [BEST, "|skip_connect~0|+|none~0|avg_pool_3x3~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"])
def test_fixed_network_equals_supernet_with_shared_weights(arch_string):
    arch = from_nb201_string(arch_string)
    supernet = _net(n=2)
    fixed = NB201SearchNetwork(init_channels=4, cells_per_stage=2, num_classes=10, only=arch)
    shared = supernet.state_dict()
    assert set(fixed.state_dict()) < set(shared)
    fixed.load_state_dict({k: shared[k] for k in fixed.state_dict()})
    assert set(_op_modules(fixed)) == _expected_modules(fixed, arch)
    x = torch.randn(4, 3, 8, 8)
    for train in (True, False):
        supernet.train(train)
        fixed.train(train)
        torch.testing.assert_close(fixed(x, arch), supernet(x, arch), rtol=0, atol=0)


def test_fixed_network_refuses_an_invalid_architecture():
    with pytest.raises(ValueError, match="nb201"):
        NB201SearchNetwork(4, 1, only={"cell": (((0, 9),), (), ())})


def test_selects_ops_from_host_ints_on_meta_device():
    """Meta tensors have no data: any read of a device tensor to decide which op runs would raise."""
    with torch.device("meta"):
        net = NB201SearchNetwork(init_channels=4, cells_per_stage=1)
    x = torch.empty(2, 3, 8, 8, device="meta")
    for arch in _archs(3, seed=3):
        out = net(x, arch)
        assert out.shape == (2, 10) and out.device.type == "meta"
        out.sum().backward()
    assert net.classifier.weight.grad is not None
