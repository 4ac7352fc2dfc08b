"""The evaluation network built from a CNN genotype (DARTS NetworkCIFAR shape): stem, `layers` cells with
reductions at 1/3 and 2/3, an auxiliary head after the cell at 2/3, drop-path on every non-identity op."""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..cnn_cell import build_cells, chosen_ops, reduction_layers
from ..genotypes import Genotype, to_architecture


class AuxiliaryHead(nn.Module):
    """DARTS's auxiliary classifier for 8x8 feature maps (CIFAR); adapts to other sizes by adaptive pooling.
    map_size, pool_stride and last_batchnorm let the ImageNet head (models/imagenet.py) share it."""

    def __init__(self, channels: int, num_classes: int, map_size: int = 8, pool_stride: int = 3,
                 last_batchnorm: bool = True):
        super().__init__()
        self.map_size = map_size
        self.features = nn.Sequential(
            nn.ReLU(inplace=True),
            nn.AvgPool2d(5, stride=pool_stride, padding=0, count_include_pad=False),
            nn.Conv2d(channels, 128, 1, bias=False),
            nn.BatchNorm2d(128),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 768, 2, bias=False),
            *([nn.BatchNorm2d(768)] if last_batchnorm else []),
            nn.ReLU(inplace=True),
        )
        self.classifier = nn.Linear(768, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if tuple(x.shape[-2:]) != (self.map_size, self.map_size):  # other image sizes: resample to the map the
            x = nn.functional.adaptive_avg_pool2d(x, self.map_size)  # head is built for (else its Linear breaks)
        return self.classifier(self.features(x).flatten(1))


class CellStackNetwork(nn.Module):
    """What the networks trained from a CNN genotype share, whatever their stem: the cell stack with reductions
    at 1/3 and 2/3, the auxiliary head after the cell at 2/3, global pooling and the classifier, and drop-path.
    A subclass builds its stem, then calls build_stack (this order keeps parameter order and initialisation)."""

    def __init__(self, genotype: Genotype):
        super().__init__()
        if genotype.space != "cnn":
            raise ValueError(f"{type(self).__name__} needs a CNN genotype, got a {genotype.space} one")
        self.arch = to_architecture(genotype)
        # the probability lives on the device so that changing it per epoch neither syncs nor recompiles a
        # torch.compile'd forward; the host copy says whether drop-path runs at all (off at probability 0)
        self.register_buffer("_drop_prob", torch.zeros(()), persistent=False)
        self._drop_path_prob = 0.0

    def build_stack(self, init_channels: int, layers: int, stem_channels: int, num_classes: int,
                    auxiliary_head: Callable[[int, int], nn.Module] | None, reduction_prev: bool = False) -> None:
        """auxiliary_head(channels, num_classes) builds the head (None: no head); reduction_prev as build_cells."""
        edge_ops = {reduction: chosen_ops(self.arch["reduce" if reduction else "normal"]) for reduction in (False, True)}
        self.cells, out_channels = build_cells(init_channels, layers, stem_channels, affine=True, edge_ops=edge_ops,
                                               reduction_prev=reduction_prev)
        self.aux_index = reduction_layers(layers)[1]
        self.auxiliary_head = auxiliary_head(out_channels[self.aux_index], num_classes) if auxiliary_head else None
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(out_channels[-1], num_classes)

    @property
    def drop_path_prob(self) -> float:
        return self._drop_path_prob

    @drop_path_prob.setter
    def drop_path_prob(self, p: float) -> None:
        if not 0.0 <= p < 1.0:
            raise ValueError(f"drop_path_prob must be in [0, 1), got {p}")
        self._drop_path_prob = float(p)
        self._drop_prob.fill_(p)

    def run_stack(self, s0: torch.Tensor, s1: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The cells from the stem's (s0, s1) to (logits, auxiliary logits or None); the auxiliary head runs
        only in training mode."""
        aux_logits = None
        drop_prob = self._drop_prob if self._drop_path_prob > 0.0 else None
        for i, cell in enumerate(self.cells):
            cell_arch = self.arch["reduce" if cell.reduction else "normal"]
            s0, s1 = s1, cell(s0, s1, cell_arch, drop_prob)
            if i == self.aux_index and self.auxiliary_head is not None and self.training:
                aux_logits = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1)), aux_logits


class EvalNetwork(CellStackNetwork):
    def __init__(self, genotype: Genotype, init_channels: int = 36, layers: int = 20, num_classes: int = 10,
                 auxiliary: bool = True, in_channels: int = 3, stem_multiplier: int = 3):
        super().__init__(genotype)
        stem_channels = stem_multiplier * init_channels
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, stem_channels, 3, padding=1, bias=False), nn.BatchNorm2d(stem_channels)
        )
        self.build_stack(init_channels, layers, stem_channels, num_classes, AuxiliaryHead if auxiliary else None)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Returns (logits, auxiliary logits or None); the auxiliary head runs only in training mode."""
        s = self.stem(x)
        return self.run_stack(s, s)


def count_parameters(model: nn.Module, exclude_auxiliary: bool = True) -> int:
    """Trainable parameters; the auxiliary head is excluded by default, as papers report."""
    return sum(p.numel() for name, p in model.named_parameters()
               if p.requires_grad and not (exclude_auxiliary and name.startswith("auxiliary_head")))
