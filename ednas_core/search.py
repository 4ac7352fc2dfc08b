"""The EDNAS alternating search loop, with an atomic checkpoint every epoch and exact resume.

Each epoch (alternate=epoch, the authors' order): one pass of child steps over the training split, each on a
freshly sampled architecture, then one pass of policy steps over the validation split, each sampling an
architecture, scoring it on one minibatch and taking one REINFORCE step. alternate=step interleaves one policy
step after every child step (cycling the validation split).

Every epoch's randomness (batch order, augmentation, sampled architectures, dropout) is derived from
(seed, epoch), so a run killed after epoch k and resumed from its checkpoint ends identical to one that was not.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import numpy as np
import torch

from .checkpoint import load_checkpoint, save_checkpoint
from .config import SearchConfig
from .policy import ReinforcePolicy
from .runtime import Runtime
from .spaces import Architecture, SearchSpace

Batch = Any


class Child(Protocol):
    """What the loop needs from a task's weight-sharing network (CNN: child_cnn.ImageChild)."""

    def start_epoch(self, epoch: int) -> float: ...
    def train_batches(self, epoch: int) -> Iterator[Batch]: ...
    def policy_batches(self, epoch: int) -> Iterator[Batch]: ...
    def train_step(self, arch: Architecture, batch: Batch) -> None: ...
    def reward(self, arch: Architecture, batch: Batch) -> float: ...
    def epoch_metrics(self) -> dict[str, float]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...
    @property
    def images_per_epoch(self) -> tuple[int, int]: ...  # (child split, policy split)
    @property
    def steps_per_epoch(self) -> tuple[int, int]: ...   # (child batches, policy batches)


@dataclass
class EpochReport:
    """What a callback receives after each epoch. `probabilities` holds the softmax of every policy vector
    (PolicyVectors.probabilities); `counts[cell]` is [n_edges, n_ops]: how often each (edge, op) was sampled
    this epoch, in the child phase and the policy phase together."""

    epoch: int                 # 0-based index of the finished epoch
    epochs: int
    metrics: dict[str, float]
    probabilities: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]


class SearchCallback:
    """Hooks for tracking and progress; override what you need."""

    def on_resume(self, history: list[EpochReport]) -> None:
        """Called once when a run resumes from a checkpoint, with the epochs already done."""

    def on_progress(self, phase: str, step: int, total: int) -> None:
        """Called every few steps of a phase ('child' or 'policy'); never reads the device."""

    def on_epoch_end(self, report: EpochReport) -> None:
        """Called after the epoch's checkpoint is safely written."""


class CheckpointMismatch(RuntimeError):
    """The checkpoint on disk was made with other settings and cannot be resumed."""


class NonFiniteError(FloatingPointError):
    """A loss or reward became NaN or infinite."""


@dataclass
class SearchResult:
    history: list[EpochReport]
    final_architecture: Architecture
    resumed_from: int | None = None


def fingerprint(**settings: Any) -> str:
    """A short hash of everything that determines the search, to refuse resuming a different run."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _count(counts: dict[str, np.ndarray], space: SearchSpace, arch: Architecture) -> None:
    cell = space.cell
    for t in space.cell_types:
        for node, pairs in zip(cell.node_ids, arch[t]):
            for pred, op in pairs:
                counts[t][cell.edge_id(node, pred), op] += 1


class EDNASSearch:
    """Runs the alternating search of one child (the task's weight-sharing network) and one policy."""

    progress_every = 20

    def __init__(self, space: SearchSpace, child: Child, policy: ReinforcePolicy, config: SearchConfig,
                 runtime: Runtime, checkpoint_path: Path | None, callbacks: Iterable[SearchCallback] = (),
                 settings: dict[str, Any] | None = None):
        self.space = space
        self.child = child
        self.policy = policy
        self.config = config
        self.runtime = runtime
        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else None
        self.callbacks = list(callbacks)
        self.fingerprint = fingerprint(search=asdict(config), seed=runtime.seed, space=space.name,
                                       **(settings or {}))
        self.history: list[EpochReport] = []

    # --- checkpoint ---------------------------------------------------------------------------------------

    def _save(self, epoch: int) -> None:
        if self.checkpoint_path is None:
            return
        save_checkpoint({"epoch": epoch, "fingerprint": self.fingerprint, "child": self.child.state_dict(),
                         "policy": self.policy.state_dict(), "history": [asdict(r) for r in self.history]},
                        self.checkpoint_path)

    def _resume(self) -> int:
        """Loads the checkpoint if there is one; returns the first epoch still to run."""
        if self.checkpoint_path is None or not self.checkpoint_path.exists():
            return 0
        state = load_checkpoint(self.checkpoint_path)
        if state.get("fingerprint") != self.fingerprint:
            raise CheckpointMismatch(
                f"checkpoint {self.checkpoint_path} belongs to a search with other settings; "
                "delete it to start over or restore the settings it was made with"
            )
        self.child.load_state_dict(state["child"])
        self.policy.load_state_dict(state["policy"])
        self.history = [EpochReport(**r) for r in state["history"]]
        for cb in self.callbacks:
            cb.on_resume(list(self.history))
        return state["epoch"] + 1

    # --- the loop -----------------------------------------------------------------------------------------

    def run(self) -> SearchResult:
        start = self._resume()
        for epoch in range(start, self.config.epochs):
            report = self._epoch(epoch)
            self.history.append(report)
            self._save(epoch)
            for cb in self.callbacks:
                cb.on_epoch_end(report)
        return SearchResult(history=self.history, final_architecture=self.policy.final_architecture(),
                            resumed_from=start if start else None)

    def _progress(self, phase: str, step: int, total: int) -> None:
        if step % self.progress_every == 0 or step == total:
            for cb in self.callbacks:
                cb.on_progress(phase, step, total)

    def _epoch(self, epoch: int) -> EpochReport:
        rt = self.runtime
        rt.seed_epoch(epoch, "search")
        arch_gen = rt.generator("search-arch", epoch)
        lr = self.child.start_epoch(epoch)
        counts = {t: np.zeros((self.space.cell.n_edges, len(self.space.cell.ops)), np.int64)
                  for t in self.space.cell_types}
        steps: list[dict[str, float]] = []

        def child_step(batch: Batch) -> None:
            arch = self.policy.sample(arch_gen)
            _count(counts, self.space, arch)
            self.child.train_step(arch, batch)

        def policy_step(batch: Batch) -> None:
            arch = self.policy.sample(arch_gen)
            _count(counts, self.space, arch)
            reward = self.child.reward(arch, batch)
            if not math.isfinite(reward):
                raise NonFiniteError(f"search epoch {epoch + 1}: policy reward is {reward}; "
                                     "the shared weights diverged (lower search.lr)")
            steps.append(self.policy.learn(arch, reward))

        n_child, n_policy = self.child.images_per_epoch
        child_steps, policy_steps = self.child.steps_per_epoch
        t0 = time.perf_counter()
        if self.config.alternate == "epoch":
            for i, batch in enumerate(self.child.train_batches(epoch), 1):
                child_step(batch)
                self._progress("child", i, child_steps)
            rt.synchronize()
            t1 = time.perf_counter()
            for i, batch in enumerate(self.child.policy_batches(epoch), 1):
                policy_step(batch)
                self._progress("policy", i, policy_steps)
            t2 = time.perf_counter()
            child_time, policy_time = t1 - t0, t2 - t1
        else:  # one policy step after every child step; the validation split is cycled
            n_policy = child_steps * self.config.policy_batch_size
            policy_iter = _cycle(lambda: self.child.policy_batches(epoch))
            child_time = policy_time = 0.0
            for i, batch in enumerate(self.child.train_batches(epoch), 1):
                a = time.perf_counter()
                child_step(batch)
                b = time.perf_counter()
                policy_step(next(policy_iter))
                child_time += b - a
                policy_time += time.perf_counter() - b
                self._progress("child", i, child_steps)
            rt.synchronize()

        metrics = self.child.epoch_metrics()
        if not math.isfinite(metrics["child_loss"]):
            raise NonFiniteError(f"search epoch {epoch + 1}: child loss is {metrics['child_loss']}; "
                                 "the shared weights diverged (lower search.lr or search.grad_clip)")
        with torch.no_grad():
            entropies = {f"entropy_{k}": float(v) for k, v in self.policy.vectors.entropies().items()}
        metrics.update({
            "reward": float(np.mean([s["reward"] for s in steps])) if steps else math.nan,
            "advantage": float(np.mean([s["advantage"] for s in steps])) if steps else math.nan,
            "policy_loss": float(np.mean([s["policy_loss"] for s in steps])) if steps else math.nan,
            "baseline": self.policy.baseline.value,
            "entropy": float(sum(entropies.values())),
            **entropies,
            "lr": lr,
            "child_time_s": child_time,
            "policy_time_s": policy_time,
            "epoch_time_s": child_time + policy_time,
            "child_images_per_s": n_child / child_time if child_time > 0 else math.nan,
            "policy_images_per_s": n_policy / policy_time if policy_time > 0 else math.nan,
        })
        return EpochReport(epoch=epoch, epochs=self.config.epochs, metrics=metrics,
                           probabilities=self.policy.vectors.probabilities(), counts=counts)


def _cycle(make: Any) -> Iterator[Batch]:
    while True:
        yield from make()
