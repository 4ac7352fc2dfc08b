"""The NAS-Bench-201 weight-sharing network: the benchmark's macro skeleton (Dong and Yang, ICLR 2020; the
TinyNetwork* search models of D-X-Y/AutoDL-Projects, lib/models/cell_searchs) around EDNAS's NB201 cell space.

    stem    Conv3x3(in, C) + BN
    body    N cells at C | ResNet block C -> 2C | N cells at 2C | ResNet block 2C -> 4C | N cells at 4C
    head    BN-ReLU, global average pool, linear

A ResNet block is the benchmark's basic block: ReLU-Conv3x3(stride 2)-BN, ReLU-Conv3x3-BN, plus a shortcut
AvgPool2d(2, 2) + Conv1x1. Every cell runs the same sampled cell (the benchmark searches one cell).

Cell: node 0 is the cell input; node j sums op(node i) over its selected incoming edges i -> j; a node without
a selected edge is zero (the input's shape); the cell's output is node 3. Candidate ops: skip_connect (identity),
nor_conv_1x1 / nor_conv_3x3 (ReLU-Conv-BN), avg_pool_3x3 (AvgPool2d(3, 1, 1, count_include_pad=False), no BN).
Every edge holds all four; a forward pass takes an Architecture of host ints and runs only the sampled ops.

BN as the benchmark's search models use it (and as our DARTS supernet does): the candidate ops' BN has no
affine parameters and tracks running statistics (NB201's ENAS / RANDOM-NAS / SETN scripts: affine=False,
track_running_stats=1); the stem, the ResNet blocks and the head keep the skeleton's affine BN.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ..ops import ReLUConvBN
from ..spaces import NB201_SPACE, Architecture, CellArch

CELL = NB201_SPACE.cell
ALL_OPS = {edge_id: CELL.ops for edge_id in range(CELL.n_edges)}


def make_nb201_op(name: str, channels: int, affine: bool) -> nn.Module:
    """Candidate operation `name` of an NB201 edge (stride 1, `channels` in and out)."""
    if name == "skip_connect":
        return nn.Identity()
    if name == "nor_conv_1x1":
        return ReLUConvBN(channels, channels, 1, 1, 0, affine)
    if name == "nor_conv_3x3":
        return ReLUConvBN(channels, channels, 3, 1, 1, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
    raise ValueError(f"unknown NB201 operation {name!r}; known: {', '.join(CELL.ops)}")


def chosen_ops(cell: CellArch) -> dict[int, list[str]]:
    """edge id -> names of the ops a CellArch uses on it (for building only those)."""
    return CELL.ops_by_edge(cell)


class NB201Cell(nn.Module):
    """edges[str(edge_id)][op_name] holds the candidate modules; `edge_ops` says which ops to build per edge."""

    def __init__(self, channels: int, edge_ops: dict[int, Iterable[str]], affine: bool = False):
        super().__init__()
        self.edges = nn.ModuleDict()
        for edge_id, names in sorted(edge_ops.items()):
            self.edges[str(edge_id)] = nn.ModuleDict({n: make_nb201_op(n, channels, affine) for n in names})

    def forward(self, x: torch.Tensor, cell: CellArch) -> torch.Tensor:
        states = [x]
        for node, pairs in zip(CELL.node_ids, cell):
            total = None
            for pred, op in pairs:
                h = self.edges[str(CELL.edge_id(node, pred))][CELL.ops[op]](states[pred])
                total = h if total is None else total + h
            states.append(torch.zeros_like(x) if total is None else total)
        return states[-1]


class ResNetBlock(nn.Module):
    """The benchmark's reduction between stages: a stride-2 basic block with an AvgPool + Conv1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1, affine=True)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1, affine=True)
        self.downsample = nn.Sequential(nn.AvgPool2d(2, stride=2), nn.Conv2d(c_in, c_out, 1, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


class NB201SearchNetwork(nn.Module):
    """cells: the 3N cells and the two ResNet blocks in network order (the benchmark's module layout)."""

    def __init__(self, init_channels: int = 16, cells_per_stage: int = 5, num_classes: int = 10,
                 in_channels: int = 3, only: Architecture | None = None, affine: bool = False):
        """only=None builds every candidate op on every edge (the weight-sharing network); an Architecture builds
        just its ops under the same module names: the same child as a fixed network (the supernet's weights load
        into it by name). affine: the cells' BN learns scale and shift (the benchmark's training of one cell,
        train_nb201.py); the search network's does not."""
        super().__init__()
        if init_channels < 1 or cells_per_stage < 1:
            raise ValueError(f"NB201 network needs init_channels >= 1 and cells_per_stage >= 1, "
                             f"got {init_channels} and {cells_per_stage}")
        c = init_channels
        edge_ops = ALL_OPS if only is None else chosen_ops(NB201_SPACE.validate(only)["cell"])
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        self.cells = nn.ModuleList()
        for stage in range(3):
            if stage:
                self.cells.append(ResNetBlock(c, 2 * c))
                c *= 2
            for _ in range(cells_per_stage):
                self.cells.append(NB201Cell(c, edge_ops, affine=affine))
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor, arch: Architecture) -> torch.Tensor:
        cell = arch["cell"]
        x = self.stem(x)
        for module in self.cells:
            x = module(x, cell) if isinstance(module, NB201Cell) else module(x)
        return self.classifier(self.global_pooling(self.lastact(x)).flatten(1))
