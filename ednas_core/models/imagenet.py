"""The ImageNet evaluation network built from a CNN genotype (DARTS NetworkImageNet, the mobile setting): two
stride-4/stride-2 stems take 224x224 down to 56x56 and 28x28, `layers` cells with reductions at 1/3 and 2/3
(28 -> 14 -> 7), DARTS's ImageNet auxiliary head after the cell at 2/3, global pooling and a 1000-way classifier.
The cell stack, drop-path and the (logits, auxiliary logits or None) forward are EvalNetwork's (models/cnn.py)."""

from __future__ import annotations

import torch
from torch import nn

from ..genotypes import Genotype
from .cnn import AuxiliaryHead, CellStackNetwork


class AuxiliaryHeadImageNet(AuxiliaryHead):
    """DARTS's AuxiliaryHeadImageNet: ReLU, AvgPool 5/stride 2, 1x1 conv to 128, BN, ReLU, 2x2 conv to 768, ReLU,
    Linear. DARTS leaves out the BatchNorm after the 768-channel conv (commented out in its model.py, "for
    consistency with the experiments in the paper"), so this head does too. DARTS's docstring says 14x14 input,
    but the cell at 2/3 is a reduction cell, so the map it sees is 7x7 at 224x224 (5/2 pooling -> 2x2 -> the 2x2
    conv -> 1x1); other sizes are resampled to 7x7."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__(channels, num_classes, map_size=7, pool_stride=2, last_batchnorm=False)


def imagenet_stems(in_channels: int, channels: int) -> tuple[nn.Sequential, nn.Sequential]:
    """DARTS NetworkImageNet's stems: stem0, two stride-2 3x3 convolutions (224 -> 56, `channels` // 2 then
    `channels`), and stem1, one more (56 -> 28). The search network on ImageNet uses them too (the paper: the
    stem reduced to 28x28)."""
    c = channels
    stem0 = nn.Sequential(
        nn.Conv2d(in_channels, c // 2, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c // 2),
        nn.ReLU(inplace=True),
        nn.Conv2d(c // 2, c, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c),
    )
    stem1 = nn.Sequential(  # DARTS's ReLU here is in place, rectifying s0 too; the first cell's
        nn.ReLU(inplace=False),  # FactorizedReduce rectifies s0 anyway, so keeping s0 intact changes nothing
        nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c),
    )
    return stem0, stem1


class ImageNetEvalNetwork(CellStackNetwork):
    def __init__(self, genotype: Genotype, init_channels: int = 48, layers: int = 14, num_classes: int = 1000,
                 auxiliary: bool = True, in_channels: int = 3):
        super().__init__(genotype)
        c = init_channels
        self.stem0, self.stem1 = imagenet_stems(in_channels, c)
        # the first cell's s0 (stem0, 56x56) has twice the resolution of its s1 (stem1, 28x28)
        self.build_stack(c, layers, c, num_classes, AuxiliaryHeadImageNet if auxiliary else None,
                         reduction_prev=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (logits, auxiliary logits or None); the auxiliary head runs only in training mode."""
        s0 = self.stem0(x)
        return self.run_stack(s0, self.stem1(s0))
