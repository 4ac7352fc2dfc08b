"""What the CNN and RNN children of the search share: a weight-sharing network and its optimizer, train/eval
mode switched only when it changes, and the epoch's loss and accuracy accumulated on the device (read once)."""

from __future__ import annotations

import torch
from torch import nn

from .runtime import Runtime


class SharedWeightsChild:
    net: nn.Module
    optimizer: torch.optim.Optimizer
    runtime: Runtime
    _mode = ""

    def _set_mode(self, mode: str) -> None:
        if mode != self._mode:
            self.net.train(mode == "train")
            self._mode = mode

    def _reset(self) -> None:
        device = self.runtime.device
        self._loss_sum = torch.zeros((), device=device)
        self._correct = torch.zeros((), dtype=torch.long, device=device)
        self._seen = 0

    def _accumulate(self, loss: torch.Tensor, predictions: torch.Tensor, targets: torch.Tensor) -> None:
        """Adds one step's mean loss and correct predictions without reading the device."""
        n = targets.numel()
        self._loss_sum += loss.detach().float() * n
        self._correct += (predictions == targets).sum()
        self._seen += n

    def _epoch_loss_acc(self) -> tuple[float, float]:
        seen = max(self._seen, 1)
        return float(self._loss_sum) / seen, float(self._correct) / seen

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
