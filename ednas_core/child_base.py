"""What the CNN and RNN children of the search share: a weight-sharing network and its optimizer, train/eval
mode switched only when it changes, and the epoch's loss and accuracy accumulated on the device (read once)."""

from __future__ import annotations

import torch
from torch import nn

from .device_sums import DeviceSums
from .runtime import Runtime


class SharedWeightsChild:
    net: nn.Module
    optimizer: torch.optim.Optimizer
    runtime: Runtime
    sums: DeviceSums  # the epoch's loss and accuracy, on the device
    _mode = ""

    def _set_mode(self, mode: str) -> None:
        if mode != self._mode:
            self.net.train(mode == "train")
            self._mode = mode

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
