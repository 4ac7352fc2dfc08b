"""Runtime.sgd: the fused SGD kernel (runtime.fused_optimizer, on by default on CUDA) on a weight-sharing network,
where a parameter gets its first gradient when its op is first sampled, many steps after the others. PyTorch's
CPU build has the same fused kernel, so this runs everywhere."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import make_pattern_dataset, make_runtime, tiny_search_config
from ednas_core.child_cnn import ImageChild
from ednas_core.config import DataConfig
from ednas_core.spaces import CNN_SPACE
from ednas_core.strategies.ednas import PolicyVectors

DATA = make_pattern_dataset(n_train=128, n_test=32)


def _child_weights_after_steps(fused: bool) -> list[torch.Tensor]:
    rt = dataclasses.replace(make_runtime("cpu"), fused_optimizer=fused)
    child = ImageChild.build(DATA, tiny_search_config(batch_size=16), DataConfig(), rt)
    assert bool(child.optimizer.defaults["fused"]) is fused
    policy, g = PolicyVectors(CNN_SPACE), torch.Generator().manual_seed(0)
    child.start_epoch(0)
    for batch in child.train_batches(0):  # a new architecture every step: ops get their first gradient late
        child.train_step(policy.sample(g), batch)
    return [p.detach().clone() for p in child.net.parameters()]


def test_fused_sgd_trains_a_weight_sharing_child_exactly_as_the_unfused_one():
    """Once failed on the H200 at the second child step: 'expected Tensor as element 5 in argument 2, but got
    NoneType' (PyTorch's fused step makes momentum buffers only when no parameter has one yet)."""
    fused, plain = _child_weights_after_steps(True), _child_weights_after_steps(False)
    assert len(fused) == len(plain)
    for a, b in zip(fused, plain):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    initial = [p.detach() for p in ImageChild.build(DATA, tiny_search_config(batch_size=16), DataConfig(),
                                                    make_runtime("cpu")).net.parameters()]
    moved = sum(not torch.equal(a, b) for a, b in zip(fused, initial))
    assert 100 < moved < len(initial)  # many ops trained, first sampled at different steps; some never sampled


def test_fused_sgd_with_dampening_is_refused():
    rt = dataclasses.replace(make_runtime("cpu"), fused_optimizer=True)
    with pytest.raises(ValueError, match="dampening 0"):
        rt.sgd([torch.nn.Parameter(torch.ones(2))], lr=0.1, momentum=0.9, dampening=0.1)
    plain = rt.sgd([torch.nn.Parameter(torch.ones(2))], lr=0.1)  # no momentum: no buffers to start
    assert plain.defaults["fused"] and not plain.state
