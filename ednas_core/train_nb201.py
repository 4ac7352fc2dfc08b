"""Training one NAS-Bench-201 cell from scratch with the benchmark's own recipe (nb201.evaluate.train: true), to
check a found cell's table accuracy on this machine: the benchmark's network (C=16, N=5 cells per stage, the
ResNet reductions of supernet/nb201.py with affine BN in the cells), SGD with Nesterov momentum 0.9, learning
rate 0.1 cosine-annealed to 0 over 200 epochs, weight decay 5e-4, batch 256, random crop and flip, no gradient
clipping, no auxiliary head or drop-path (D-X-Y/AutoDL-Projects configs/nas-benchmark/hyper-opts/200E.config).
The loop, checkpoints and exact resume are GenotypeTrainer's (train.py)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .data import ImageDataset
from .genotypes import Genotype, to_architecture
from .supernet.nb201 import NB201SearchNetwork
from .train import GenotypeTrainer


class NB201EvalNetwork(nn.Module):
    """One NB201 cell in the benchmark's skeleton, as GenotypeTrainer trains a network: forward(images) ->
    (logits, None) (no auxiliary head); drop_path_prob is accepted and must stay 0 (the recipe has none)."""

    def __init__(self, genotype: Genotype, init_channels: int, cells_per_stage: int, num_classes: int,
                 in_channels: int):
        super().__init__()
        self.arch = to_architecture(genotype)
        self.net = NB201SearchNetwork(init_channels, cells_per_stage, num_classes, in_channels, only=self.arch,
                                      affine=True)
        self.drop_path_prob = 0.0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self.net(x, self.arch), None


class NB201Trainer(GenotypeTrainer):
    """GenotypeTrainer on the NB201 network (config: ednas_core.config.NB201EvaluateConfig)."""

    @staticmethod
    def build_model(genotype: Genotype, dataset: ImageDataset, config: Any) -> nn.Module:
        if genotype.space != "nb201":
            raise ValueError(f"the NB201 recipe trains nb201 cells, got a {genotype.space} genotype")
        return NB201EvalNetwork(genotype, config.init_channels, config.layers, dataset.num_classes,
                                dataset.in_channels)
