"""The checkpointed epoch loop shared by the search and the trainers: after every epoch an atomic checkpoint
(state + history + a fingerprint of the settings), then the callbacks; on start, the checkpoint is resumed when
its fingerprint matches. With every epoch's randomness derived from (seed, epoch), a run killed after epoch k and
resumed ends identical to one that was not killed."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Generic, Iterable, TypeVar

from .checkpoint import load_checkpoint, save_checkpoint

R = TypeVar("R")


class EpochCallback:
    """Hooks for tracking and progress; override what you need."""

    def on_resume(self, history: list) -> None:
        """Called once when a run resumes from a checkpoint, with the epochs already done."""

    def on_progress(self, phase: str, step: int, total: int) -> None:
        """Called every few steps of a phase; never reads the device."""

    def on_epoch_end(self, report: Any) -> None:
        """Called after the epoch's checkpoint is safely written."""


class CheckpointMismatch(RuntimeError):
    """The checkpoint on disk was made with other settings and cannot be resumed."""


class NonFiniteError(FloatingPointError):
    """A loss or reward became NaN or infinite."""


def fingerprint(**settings: Any) -> str:
    """A short hash of everything that determines a run, to refuse resuming a different one."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CheckpointedLoop(Generic[R]):
    """Subclasses set `report_type` (a dataclass) and `what`, and implement run_epoch, state_dict and
    load_state_dict; run_epochs() does the rest."""

    progress_every = 20
    what = "run"
    report_type: type

    def __init__(self, epochs: int, checkpoint_path: Path | None, callbacks: Iterable[EpochCallback],
                 fingerprint: str):
        self.epochs = epochs
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.callbacks = list(callbacks)
        self.fingerprint = fingerprint
        self.history: list[R] = []

    def run_epoch(self, epoch: int) -> R:
        raise NotImplementedError

    def state_dict(self) -> dict:
        raise NotImplementedError

    def load_state_dict(self, state: dict) -> None:
        raise NotImplementedError

    def run_epochs(self) -> int | None:
        """Runs the remaining epochs; returns the epoch it resumed from, or None for a fresh start."""
        start = self._resume()
        for epoch in range(start, self.epochs):
            report = self.run_epoch(epoch)
            self.history.append(report)
            if self.checkpoint_path is not None:
                save_checkpoint({"epoch": epoch, "fingerprint": self.fingerprint, "state": self.state_dict(),
                                 "history": [asdict(r) for r in self.history]}, self.checkpoint_path)
            for cb in self.callbacks:
                cb.on_epoch_end(report)
        return start or None

    def progress(self, phase: str, step: int, total: int) -> None:
        if step % self.progress_every == 0 or step == total:
            for cb in self.callbacks:
                cb.on_progress(phase, step, total)

    def _resume(self) -> int:
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return 0
        state = load_checkpoint(self.checkpoint_path)
        if state.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint_path} belongs to a {self.what} with other settings; "
                "delete it to start over or restore the settings it was made with"
            )
        self.load_state_dict(state["state"])
        self.history = [self.report_type(**r) for r in state["history"]]
        for cb in self.callbacks:
            cb.on_resume(list(self.history))
        return state["epoch"] + 1
