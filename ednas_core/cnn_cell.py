"""The convolutional cell and the cell stack, shared by the weight-sharing search network (every candidate op
on every edge) and the evaluation network (only the genotype's ops). A cell runs only the ops a CellArch names,
decided from host ints: no device tensor is ever read to choose what to run."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from .ops import FactorizedReduce, ReLUConvBN, make_cnn_op
from .spaces import CNN_SPACE, CellArch

CELL = CNN_SPACE.cell


def drop_path(x: torch.Tensor, drop_prob: torch.Tensor | float) -> torch.Tensor:
    """Zeroes whole samples with probability drop_prob and rescales the rest. drop_prob may be a 0-dim tensor on
    x's device: then nothing is read on the host and a compiled graph stays valid when the probability changes."""
    keep = 1.0 - drop_prob
    mask = (torch.rand(x.shape[0], 1, 1, 1, device=x.device) < keep).to(x.dtype)
    return x * mask / keep


class CNNCell(nn.Module):
    """edges[str(edge_id)][op_name] holds the candidate modules; `edge_ops` says which ops to build per edge."""

    def __init__(self, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool, affine: bool,
                 edge_ops: dict[int, Iterable[str]]):
        super().__init__()
        self.reduction = reduction
        self.preprocess0 = FactorizedReduce(c_pp, c, affine) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, affine)
        self.preprocess1 = ReLUConvBN(c_p, c, 1, 1, 0, affine)
        self.edges = nn.ModuleDict()
        for edge_id, names in sorted(edge_ops.items()):
            pred, _ = CELL.edges[edge_id]
            stride = 2 if reduction and pred < CELL.n_inputs else 1
            self.edges[str(edge_id)] = nn.ModuleDict({n: make_cnn_op(n, c, stride, affine) for n in names})

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, cell: CellArch,
                drop_prob: torch.Tensor | float | None = None) -> torch.Tensor:
        """drop_prob None: no drop-path (the search network, and evaluation with probability 0)."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node, pairs in zip(CELL.node_ids, cell):
            total = None
            for pred, op in pairs:
                module = self.edges[str(CELL.edge_id(node, pred))][CELL.ops[op]]
                h = module(states[pred])
                if drop_prob is not None and self.training and not isinstance(module, nn.Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat(states[CELL.n_inputs:], dim=1)


def chosen_ops(cell: CellArch) -> dict[int, list[str]]:
    """edge id -> names of the ops a CellArch uses on it (for building only those)."""
    return CELL.ops_by_edge(cell)


def reduction_layers(layers: int) -> tuple[int, int]:
    """Reduction cells sit at 1/3 and 2/3 of the depth."""
    return layers // 3, 2 * layers // 3


def build_cells(c: int, layers: int, stem_channels: int, affine: bool,
                edge_ops: dict[bool, dict[int, Iterable[str]]],
                reduction_prev: bool = False) -> tuple[nn.ModuleList, list[int]]:
    """Stacks `layers` cells after a stem of `stem_channels`; edge_ops[is_reduction] gives each cell's ops.
    reduction_prev: the first cell's s0 has twice the resolution of its s1 (DARTS's ImageNet stems, stem0 then
    the stride-2 stem1), so that cell reduces s0 with a FactorizedReduce. Returns the cells and the output
    channels of each cell."""
    cells = nn.ModuleList()
    c_pp, c_p, c_curr = stem_channels, stem_channels, c
    out_channels = []
    for i in range(layers):
        reduction = i in reduction_layers(layers)
        if reduction:
            c_curr *= 2
        cells.append(CNNCell(c_pp, c_p, c_curr, reduction, reduction_prev, affine, edge_ops[reduction]))
        reduction_prev = reduction
        c_pp, c_p = c_p, CELL.n_nodes * c_curr
        out_channels.append(c_p)
    return cells, out_channels
