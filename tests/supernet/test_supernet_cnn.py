"""The weight-sharing search network: runs exactly the sampled ops, normal cells with the normal sample and
reduction cells with the reduce sample (regression for the authors' swap), gradients only to sampled ops, and
op selection from host ints (regression for the per-op GPU-to-CPU copy: the network runs on 'meta' tensors)."""

import pytest
import torch

from ednas_core.cnn_cell import CELL, reduction_layers
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.models.cnn import EvalNetwork
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.spaces import CNN_SPACE
from ednas_core.supernet.cnn import SearchNetwork


def _net(layers=5, **kw):
    torch.manual_seed(0)
    return SearchNetwork(init_channels=4, layers=layers, num_classes=10, **kw)


def _sampler(seed=0):
    return PolicyVectors(CNN_SPACE, init_std=1.0, generator=torch.Generator().manual_seed(seed))


def _op_modules(net):
    """The candidate op modules: cells.<c>.edges.<e>.<op>."""
    return {n: m for n, m in net.named_modules() if n.startswith("cells.") and n.count(".") == 4 and ".edges." in n}


def _expected_modules(net, arch):
    names = set()
    for c, cell in enumerate(net.cells):
        cell_type = "reduce" if cell.reduction else "normal"
        for node, pairs in zip(CELL.node_ids, arch[cell_type]):
            for pred, op in pairs:
                names.add(f"cells.{c}.edges.{CELL.edge_id(node, pred)}.{CELL.ops[op]}")
    return names


def _differing_arch(vectors, generator):
    while True:
        arch = vectors.sample(generator)
        if arch["normal"] != arch["reduce"]:
            return arch


def test_every_edge_holds_all_seven_ops():
    net = _net()
    modules = _op_modules(net)
    assert len(modules) == 5 * 14 * 7
    for c in range(5):
        for e in range(14):
            assert set(net.cells[c].edges[str(e)]) == set(CELL.ops)


@pytest.mark.parametrize("layers, expected", [(3, (1, 2)), (5, (1, 3)), (8, (2, 5)), (20, (6, 13))])
def test_reduction_layers_at_one_and_two_thirds(layers, expected):
    assert reduction_layers(layers) == expected
    if layers <= 8:
        net = _net(layers)
        assert tuple(i for i, cell in enumerate(net.cells) if cell.reduction) == expected


def test_output_shape_and_spatial_reduction():
    net = _net()
    arch = _sampler().sample(torch.Generator().manual_seed(0))
    x = torch.randn(3, 3, 16, 16)
    assert net(x, arch).shape == (3, 10)
    # one reduction cell halves H, W and doubles channels
    seen = {}
    hooks = [cell.register_forward_hook(lambda m, i, o, c=c: seen.__setitem__(c, o.shape))
             for c, cell in enumerate(net.cells)]
    net(x, arch)
    for h in hooks:
        h.remove()
    assert seen[0] == (3, 16, 16, 16) and seen[1] == (3, 32, 8, 8) and seen[3] == (3, 64, 4, 4)


def test_in_channels_and_classes():
    net = SearchNetwork(init_channels=4, layers=3, num_classes=7, in_channels=1)
    arch = _sampler().sample(torch.Generator().manual_seed(0))
    assert net(torch.randn(2, 1, 8, 8), arch).shape == (2, 7)


def test_forward_runs_exactly_the_sampled_ops_with_normal_and_reduce_samples_not_swapped():
    net = _net()
    net.eval()
    modules = _op_modules(net)
    called = []
    for name, module in modules.items():
        module.register_forward_hook(lambda m, i, o, name=name: called.append(name))
    vectors, g = _sampler(), torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        for _ in range(20):
            arch = _differing_arch(vectors, g)
            called.clear()
            net(x, arch)
            expected = _expected_modules(net, arch)
            assert len(called) == len(set(called)) == 5 * 8  # each sampled op runs once
            assert set(called) == expected
            # the swapped assignment (reduction cells using the normal sample) names different modules
            swapped = _expected_modules(net, {"normal": arch["reduce"], "reduce": arch["normal"]})
            assert set(called) != swapped


def test_backward_reaches_only_sampled_ops():
    net = _net()
    arch = _differing_arch(_sampler(), torch.Generator().manual_seed(2))
    x = torch.randn(2, 3, 16, 16)
    net(x, arch).logsumexp(-1).sum().backward()
    expected = _expected_modules(net, arch)
    with_params = 0
    for name, module in _op_modules(net).items():
        params = list(module.parameters())
        if not params:  # pooling (BN affine=False) and identity
            continue
        if name in expected:
            assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in params), name
            with_params += 1
        else:
            assert all(p.grad is None for p in params), name
    assert with_params > 0
    for p in list(net.stem.parameters()) + list(net.classifier.parameters()):
        assert p.grad is not None
    for cell in net.cells:
        for p in list(cell.preprocess0.parameters()) + list(cell.preprocess1.parameters()):
            assert p.grad is not None


def test_search_network_selects_ops_from_host_ints_on_meta_device():
    """Meta tensors have no data: any read of a device tensor to decide which op runs would raise."""
    with torch.device("meta"):
        net = SearchNetwork(init_channels=4, layers=5, num_classes=10)
    assert next(net.parameters()).device.type == "meta"
    vectors, g = _sampler(), torch.Generator().manual_seed(3)
    x = torch.empty(2, 3, 16, 16, device="meta")
    for _ in range(3):
        arch = vectors.sample(g)
        out = net(x, arch)
        assert out.shape == (2, 10) and out.device.type == "meta"
        out.sum().backward()
    assert net.classifier.weight.grad is not None


def test_eval_network_selects_ops_from_host_ints_on_meta_device():
    with torch.device("meta"):
        net = EvalNetwork(PAPER_GENOTYPES["paper-cifar10"], init_channels=4, layers=5, num_classes=10)
    net.drop_path_prob = 0.2
    net.train()
    x = torch.empty(2, 3, 16, 16, device="meta")
    logits, aux = net(x)
    assert logits.shape == (2, 10) and logits.device.type == "meta"
    assert aux.shape == (2, 10)
    (logits.sum() + 0.4 * aux.sum()).backward()
    net.eval()
    logits, aux = net(x)
    assert logits.shape == (2, 10) and aux is None
