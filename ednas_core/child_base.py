"""What the CNN and RNN children of the search share: a weight-sharing network and its optimizer, train/eval
mode switched only when it changes, and the epoch's loss and accuracy accumulated on the device (read once)."""

from __future__ import annotations

import torch
from torch import nn

from . import distributed
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

    _buffers_stale = False  # several processes: BatchNorm statistics updated per rank since the last average

    def _sync_gradients(self) -> None:
        """Several processes: averages the gradients that exist over the ranks (one all-reduce of the sampled
        ops' gradients: every rank trains the same architecture, the search checks it), and marks the ranks'
        BatchNorm running statistics for averaging before they are next used. One process: nothing."""
        if distributed.world().distributed:
            distributed.average_gradients(list(self.net.parameters()))
            self._buffers_stale = True

    def _sync_buffers(self) -> None:
        """Averages the ranks' BatchNorm running statistics when training changed them (once per phase in
        alternate=epoch): the EMA is linear, so this equals averaging after every step."""
        if self._buffers_stale:
            distributed.average_buffers(self.net)
            self._buffers_stale = False

    def state_dict(self) -> dict:
        self._sync_buffers()  # every rank calls it (the loop does), the same state on every rank
        return {"net": self.net.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
