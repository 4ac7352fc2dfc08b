"""Top-k errors (ImageNet's top-1/top-5) computed on the device: the results are tensors, nothing is read on the
host, so a step loop can add them up (as DeviceSums does with top-1) and the caller reads them once."""

from __future__ import annotations

from typing import Sequence

import torch


def topk_correct(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, torch.Tensor]:
    """k -> the number of samples whose target is among the k highest logits (0-dim long tensors on the device)."""
    if logits.dim() != 2 or targets.shape != logits.shape[:1]:
        raise ValueError(f"topk needs logits (N, classes) and targets (N,), got {tuple(logits.shape)} and "
                         f"{tuple(targets.shape)}")
    if not ks or min(ks) < 1 or max(ks) > logits.shape[1]:
        raise ValueError(f"topk needs every k in 1..{logits.shape[1]} (the number of classes), got {tuple(ks)}")
    ranked = logits.topk(max(ks), dim=1).indices  # (N, max k), best first
    hits = (ranked == targets.unsqueeze(1)).cumsum(1)  # hits[:, k-1]: 1 where the target is in the top k
    return {k: hits[:, k - 1].sum() for k in ks}


def topk_errors(logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> dict[int, torch.Tensor]:
    """k -> top-k error in percent over the batch (0-dim float tensors on the device; the caller syncs once)."""
    n = targets.numel()
    if n == 0:
        raise ValueError("topk_errors needs at least one sample")
    return {k: 100.0 - correct.float() * (100.0 / n) for k, correct in topk_correct(logits, targets, ks).items()}
