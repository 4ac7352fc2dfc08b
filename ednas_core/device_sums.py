"""An epoch's loss (and accuracy) summed on the device step by step and read on the host once, at the end:
the step loops of the search children and of the trainers add to it without any host-device synchronisation."""

from __future__ import annotations

import torch

from . import distributed


class DeviceSums:
    def __init__(self, device: torch.device):
        self.device = device
        self.reset()

    def reset(self) -> None:
        self.loss = torch.zeros((), device=self.device)
        self.correct = torch.zeros((), dtype=torch.long, device=self.device)
        self.correct_top5 = torch.zeros((), dtype=torch.long, device=self.device)
        self.seen = 0

    def add(self, loss: torch.Tensor, targets: torch.Tensor, predictions: torch.Tensor | None = None,
            top5_correct: torch.Tensor | None = None) -> None:
        """One step's mean loss over `targets`, and its correct predictions when given, and the number of
        targets among the 5 highest logits when given (metrics.topk_correct); nothing is read."""
        n = targets.numel()
        self.loss += loss.detach().float() * n
        if predictions is not None:
            self.correct += (predictions == targets).sum()
        if top5_correct is not None:
            self.correct_top5 += top5_correct
        self.seen += n

    def means(self) -> tuple[float, float]:
        """(mean loss, accuracy) over everything added since reset: the one device read. With several processes
        (ednas_core.distributed) the sums of every rank, summed on the device first: a collective, so every rank
        calls it."""
        loss, accuracy, _ = self.means_with_top5()
        return loss, accuracy

    def means_with_top5(self) -> tuple[float, float, float]:
        """(mean loss, accuracy, top-5 accuracy) in one device read, as means(); top-5 is 0 unless added."""
        totals = torch.stack([self.loss.double(), self.correct.double(), self.correct_top5.double(),
                              torch.tensor(float(self.seen), dtype=torch.float64, device=self.device)])
        if distributed.world().distributed:
            distributed.all_reduce_sum_(totals)
        loss, correct, top5, seen = totals.tolist()
        seen = max(seen, 1.0)
        return loss / seen, correct / seen, top5 / seen
