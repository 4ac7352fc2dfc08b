"""The weight-sharing CNN search network (DARTS search network shape: stem, 8 cells, C=16, reductions at 1/3
and 2/3). Every edge holds all seven candidate ops (BN without affine); a forward pass takes an Architecture
of host ints and runs exactly the sampled op on each selected edge, normal cells with the normal cell's sample
and reduction cells with the reduction cell's."""

from __future__ import annotations

import torch
from torch import nn

from ..cnn_cell import CELL, build_cells, chosen_ops
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
        edge_ops = ({False: ALL_OPS, True: ALL_OPS} if only is None else
                    {False: chosen_ops(only["normal"]), True: chosen_ops(only["reduce"])})
        self.cells, out_channels = build_cells(init_channels, layers, stem_channels, affine=False, edge_ops=edge_ops)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(out_channels[-1], num_classes)

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, arch["reduce" if cell.reduction else "normal"])
        return self.classifier(self.global_pooling(s1).flatten(1))
