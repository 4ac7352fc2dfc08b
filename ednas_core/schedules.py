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


def exponential_lr_with_warmup(base: float, epoch: int, gamma: float = 0.97, warmup_epochs: int = 5) -> float:
    """The ImageNet evaluation schedule (EDNAS_SPEC.md s.6: lr 0.1, decay 0.97 per epoch, warm-up 5):
    `base * gamma**epoch` as DARTS's cnn/train_imagenet.py (quark0/darts) gets from StepLR(step_size 1, gamma
    0.97) stepped at the start of each epoch, multiplied during the first `warmup_epochs` epochs by
    (epoch + 1) / warmup_epochs, as P-DARTS's and PC-DARTS's train_imagenet.py (chenxin061/pdarts,
    yuhuixu1993/PC-DARTS) scale the scheduled lr: `param_group['lr'] = current_lr * (epoch + 1) / 5.0`.
    So epoch 0 runs at base * 1/5 and the warm-up ends at epoch 4 on base * gamma**4. warmup_epochs=0: none."""
    if warmup_epochs < 0:
        raise ValueError(f"warmup_epochs must be >= 0, got {warmup_epochs}")
    lr = step_lr(base, epoch, 1, gamma)
    return lr * (epoch + 1) / warmup_epochs if epoch < warmup_epochs else lr


def linear_scaled_batch(batch: int, lr: float, world_size: int) -> tuple[int, float]:
    """The linear scaling rule (Goyal et al. 2017): a recipe of `batch` images per step at `lr` on one GPU run
    on `world_size` GPUs, each keeping `batch`, has a global batch and a learning rate `world_size` times larger.
    Returns (global batch, lr)."""
    if world_size < 1:
        raise ValueError(f"world_size must be >= 1, got {world_size}")
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    return batch * world_size, lr * world_size
