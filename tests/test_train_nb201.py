"""Training one NAS-Bench-201 cell with the benchmark's recipe (nb201.evaluate.train): the benchmark's network
with affine BN in its cells, no auxiliary head, no clipping; checkpointed and resumed like any evaluation."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ednas_core.config import NB201EvaluateConfig, Params
from ednas_core.genotypes import from_architecture
from ednas_core.spaces import NB201_SPACE, from_nb201_string
from ednas_core.tasks import make_trainer
from ednas_core.train_nb201 import NB201EvalNetwork
from helpers import StopAfter, cpu_runtime

CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"


def tiny(**overrides) -> NB201EvaluateConfig:
    return dataclasses.replace(NB201EvaluateConfig(train=True), epochs=2, batch_size=32, init_channels=4, layers=1,
                               lr=0.05, **overrides)


def test_defaults_are_the_benchmarks_200_epoch_recipe():
    c = Params().nb201.evaluate
    assert (c.epochs, c.batch_size, c.lr, c.lr_min, c.momentum, c.nesterov, c.weight_decay) == (
        200, 256, 0.1, 0.0, 0.9, True, 5e-4)
    assert (c.init_channels, c.layers, c.train) == (16, 5, False)


def test_network_learns_affine_cells_and_has_no_auxiliary_head(pattern_dataset):
    genotype = from_architecture(NB201_SPACE, from_nb201_string(CELL))
    net = NB201EvalNetwork(genotype, 4, 1, pattern_dataset.num_classes, pattern_dataset.in_channels)
    logits, aux = net(pattern_dataset.train_images[:2].float())
    assert logits.shape == (2, pattern_dataset.num_classes) and aux is None
    cell_bns = [m for name, m in net.named_modules() if ".edges." in name and isinstance(m, torch.nn.BatchNorm2d)]
    assert cell_bns and all(bn.affine for bn in cell_bns)
    # the benchmark's full-size network: only the chosen ops are built
    full = NB201EvalNetwork(genotype, 16, 5, 10, 3)
    names = {n.split(".edges.")[1].split(".")[1] for n, _ in full.named_parameters() if ".edges." in n}
    assert names == {"nor_conv_3x3"}  # skip and avg_pool have no parameters; nothing else is built


def test_trains_and_resumes_exactly(pattern_dataset, tmp_path):
    genotype = from_architecture(NB201_SPACE, from_nb201_string(CELL))
    straight = make_trainer("nb201", genotype, pattern_dataset, tiny(), cpu_runtime(0), None, [], {}).run()
    assert 0.0 <= straight.test_error <= 100.0 and len(straight.history) == 2
    assert straight.history[0].metrics["train_loss"] > straight.history[-1].metrics["train_loss"] * 0.5
    ckpt = tmp_path / "ckpt.safetensors"
    with pytest.raises(StopAfter.Killed):
        make_trainer("nb201", genotype, pattern_dataset, tiny(), cpu_runtime(0), ckpt, [StopAfter(0)], {}).run()
    resumed = make_trainer("nb201", genotype, pattern_dataset, tiny(), cpu_runtime(0), ckpt, [], {}).run()
    assert resumed.test_error == straight.test_error
    for a, b in zip(straight.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_cnn_genotype_is_refused(pattern_dataset):
    from ednas_core.genotypes import PAPER_GENOTYPES

    with pytest.raises(ValueError, match="task nb201 trains nb201 genotypes, got a cnn genotype"):
        make_trainer("nb201", PAPER_GENOTYPES["paper-cifar10"], pattern_dataset, tiny(), cpu_runtime(0), None, [], {})
