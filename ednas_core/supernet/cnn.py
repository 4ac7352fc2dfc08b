"""The weight-sharing CNN search network (DARTS search network shape: stem, 8 cells, C=16, reductions at 1/3
and 2/3). Every edge holds all seven candidate ops (BN without affine); a forward pass takes an Architecture
of host ints and runs exactly the sampled op on each selected edge, normal cells with the normal cell's sample
and reduction cells with the reduction cell's. ImageNetSearchNetwork is the same cell stack behind DARTS's
ImageNet stems (the paper's direct ImageNet search: the stem reduces 224x224 inputs to 28x28)."""

from __future__ import annotations

import torch
from torch import nn

from ..cnn_cell import CELL, build_cells, chosen_ops
from ..models.imagenet import imagenet_stems
from ..spaces import Architecture

ALL_OPS = {edge_id: CELL.ops for edge_id in range(CELL.n_edges)}


class SearchNetwork(nn.Module):
    def __init__(self, init_channels: int = 16, layers: int = 8, num_classes: int = 10, in_channels: int = 3,
                 stem_multiplier: int = 3, only: Architecture | None = None):
        """only=None builds every candidate op on every edge (the weight-sharing network); an Architecture builds
        just its ops: the same child as a fixed network, which the benchmarks compare the search step against."""
        super().__init__()
        stem_channels = stem_multiplier * init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False), nn.BatchNorm2d(stem_channels)
        )
        self.build_stack(init_channels, layers, stem_channels, num_classes, only)

    def build_stack(self, init_channels: int, layers: int, stem_channels: int, num_classes: int,
                    only: Architecture | None, reduction_prev: bool = False) -> None:
        """The cells (every op, or only `only`'s), global pooling and the classifier; reduction_prev as
        build_cells. Called by __init__ after the stem, so that parameter order and initialisation follow it."""
        edge_ops = ({False: ALL_OPS, True: ALL_OPS} if only is None else
                    {False: chosen_ops(only["normal"]), True: chosen_ops(only["reduce"])})
        self.cells, out_channels = build_cells(init_channels, layers, stem_channels, affine=False, edge_ops=edge_ops,
                                               reduction_prev=reduction_prev)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(out_channels[-1], num_classes)

    def stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The first cell's two inputs."""
        s = self.stem(x)
        return s, s

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        s0, s1 = self.stems(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, arch["reduce" if cell.reduction else "normal"])
        return self.classifier(self.global_pooling(s1).flatten(1))


class ImageNetSearchNetwork(SearchNetwork):
    """The search network of the direct ImageNet search: DARTS NetworkImageNet's stems (stem0 to 1/4 of the
    input, 56x56 at 224; stem1 to 1/8, 28x28) with `init_channels` channels, then the search cells, the first
    one reading stem0's twice larger map through a factorized reduction."""

    def __init__(self, init_channels: int = 16, layers: int = 8, num_classes: int = 1000, in_channels: int = 3,
                 only: Architecture | None = None):
        nn.Module.__init__(self)  # not SearchNetwork's: another stem
        self.stem0, self.stem1 = imagenet_stems(in_channels, init_channels)
        self.build_stack(init_channels, layers, init_channels, num_classes, only, reduction_prev=True)

    def stems(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        s0 = self.stem0(x)
        return s0, self.stem1(s0)
