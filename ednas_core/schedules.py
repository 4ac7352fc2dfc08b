"""Per-epoch learning-rate schedules, computed from the epoch index alone (no scheduler state to checkpoint)."""

from __future__ import annotations

import math

import torch


def cosine_lr(base: float, minimum: float, epoch: int, epochs: int) -> float:
    """Cosine annealing from `base` at epoch 0 towards `minimum` at epoch `epochs`."""
    return minimum + 0.5 * (base - minimum) * (1.0 + math.cos(math.pi * epoch / epochs))


def step_lr(base: float, epoch: int, every: int, gamma: float) -> float:
    """`base` multiplied by `gamma` every `every` epochs (the paper's ImageNet search schedule)."""
    return base * gamma ** (epoch // every)


def set_lr(optimizer: torch.optim.Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = lr
