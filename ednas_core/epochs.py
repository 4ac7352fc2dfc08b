"""The checkpointed epoch loop shared by the search and the trainers: after every epoch an atomic checkpoint
(state + history + a fingerprint of the settings), then the callbacks; on start, the checkpoint is resumed when
its fingerprint matches. With every epoch's randomness derived from (seed, epoch), a run killed after epoch k and
resumed ends identical to one that was not killed. A checkpoint that cannot be read (empty, cut short, not a state
file) is set aside as `<name>.corrupt-<n>` and the run starts over, saying so in one stderr line; a readable one
without the expected entries stops the run with one line naming it.

Several processes (ednas_core.distributed): every rank runs the loop; rank 0 alone writes the checkpoint (the
ranks hold the same state), followed by a barrier; on start every rank resumes from that same file."""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Generic, Iterable, TypeVar

from . import distributed
from .checkpoint import (CorruptStateFile, StateFileError, applying, load_checkpoint, require_keys, save_checkpoint,
                         set_aside)

R = TypeVar("R")


class EpochCallback:
    """Hooks for tracking and progress; override what you need."""

    def on_resume(self, history: list) -> None:
        """Called once when a run resumes from a checkpoint, with the epochs already done."""

    def on_progress(self, phase: str, step: int, total: int, unit: str = "batch") -> None:
        """Called at the start of a phase (step 0) and after each of its steps, on the host (the device is never
        read): keep it cheap and throttle any display by time. `unit`: what a step is (a batch; NAO's controller
        training: a pass over its pool)."""

    def on_epoch_end(self, report: Any) -> None:
        """Called after the epoch's checkpoint is safely written."""


class CheckpointMismatch(RuntimeError):
    """The checkpoint on disk was made with other settings and cannot be resumed."""


class NonFiniteError(FloatingPointError):
    """A loss or reward became NaN or infinite."""


def discard_unreadable(path: Path, what: str) -> bool:
    """Sets the checkpoint at `path` aside as `<name>.corrupt-<n>` when it cannot be read (empty, cut short, not a
    state file), saying so in one stderr line that starts with `what`; True if it did. The loop does this itself;
    a stage calls it before opening its MLflow run, which would otherwise go on from the killed execution's run."""
    if not Path(path).exists():
        return False
    try:
        load_checkpoint(path)
    except CorruptStateFile as err:
        _set_aside(err, what)
        return True
    except StateFileError:  # unreadable for another reason (permissions): the run itself reports it
        pass
    return False


def _set_aside(err: CorruptStateFile, what: str) -> None:
    """What a killed copy or disk trouble leaves is kept for a look, and the run starts over."""
    aside = set_aside(err.path)
    print(f"{what}: checkpoint {err.path} cannot be read ({err.reason}); moved it to {aside.name} and starting over",
          file=sys.stderr, flush=True)


def fingerprint(**settings: Any) -> str:
    """A short hash of everything that determines a run, to refuse resuming a different one."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CheckpointedLoop(Generic[R]):
    """Subclasses set `report_type` (a dataclass) and `what`, and implement run_epoch, state_dict and
    load_state_dict; run_epochs() does the rest."""

    what = "run"
    report_type: type

    def __init__(self, epochs: int, checkpoint_path: Path | None, callbacks: Iterable[EpochCallback],
                 fingerprint: str):
        self.epochs = epochs
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.callbacks = list(callbacks)
        w = distributed.world()  # several processes train otherwise (batch per rank, sharding): not resumed across
        self.fingerprint = fingerprint if not w.distributed else f"{fingerprint}-w{w.size}"
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
                state = self.state_dict()  # every rank: it may sync state across ranks (a collective)
                if distributed.is_main():  # the ranks hold the same state: rank 0 writes it
                    save_checkpoint({"epoch": epoch, "fingerprint": self.fingerprint, "state": state,
                                     "history": [asdict(r) for r in self.history]}, self.checkpoint_path)
                distributed.barrier()  # written before any rank goes on (or is killed)
            for cb in self.callbacks:
                cb.on_epoch_end(report)
        return start or None

    def progress(self, phase: str, step: int, total: int, unit: str = "batch") -> None:
        """Step `step` of `total` of a phase is done (0: the phase begins); host-only, every step."""
        for cb in self.callbacks:
            cb.on_progress(phase, step, total, unit)

    def _resume(self) -> int:
        path = self.checkpoint_path
        if path is None:
            return 0
        if distributed.world().distributed:  # rank 0 sets an unreadable one aside; then every rank reads the same
            if distributed.is_main():
                discard_unreadable(path, self.what)
            distributed.barrier()
        if not path.exists():
            return 0
        fix = "delete it to start over"
        try:
            state = load_checkpoint(path, fix)
        except CorruptStateFile as err:
            _set_aside(err, self.what)
            return 0
        require_keys(state, ("fingerprint", "epoch", "state", "history"), path, fix)
        if state["fingerprint"] != self.fingerprint:
            raise CheckpointMismatch(
                f"checkpoint {path} belongs to a {self.what} with other settings; "
                "delete it to start over or restore the settings it was made with"
            )
        with applying(path, fix):
            self.load_state_dict(state["state"])
            self.history = [self.report_type(**r) for r in state["history"]]
            start = int(state["epoch"]) + 1
        for cb in self.callbacks:
            cb.on_resume(list(self.history))
        return start
