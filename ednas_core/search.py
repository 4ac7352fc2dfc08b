"""The EDNAS alternating search loop, with an atomic checkpoint every epoch and exact resume.

Each epoch (alternate=epoch, the authors' order): one pass of child steps over the training split, each on a
freshly sampled architecture, then one pass of policy steps over the validation split, each sampling an
architecture, scoring it on one minibatch and taking one REINFORCE step. alternate=step interleaves one policy
step after every child step (cycling the validation split).

Every epoch's randomness (batch order, augmentation, sampled architectures, dropout) is derived from
(seed, epoch), so a run killed after epoch k and resumed from its checkpoint ends identical to one that was not.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol

import numpy as np
import torch

from .config import SearchConfig
from .epochs import CheckpointedLoop, EpochCallback, NonFiniteError, fingerprint
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


SearchCallback = EpochCallback  # on_resume(history), on_progress(phase, step, total), on_epoch_end(EpochReport)


@dataclass
class SearchResult:
    history: list[EpochReport]
    final_architecture: Architecture
    resumed_from: int | None = None


def _count(counts: dict[str, np.ndarray], space: SearchSpace, arch: Architecture) -> None:
    cell = space.cell
    for t in space.cell_types:
        for node, pairs in zip(cell.node_ids, arch[t]):
            for pred, op in pairs:
                counts[t][cell.edge_id(node, pred), op] += 1


class EDNASSearch(CheckpointedLoop[EpochReport]):
    """Runs the alternating search of one child (the task's weight-sharing network) and one policy."""

    what = "search"
    report_type = EpochReport

    def __init__(self, space: SearchSpace, child: Child, policy: ReinforcePolicy, config: SearchConfig,
                 runtime: Runtime, checkpoint_path: Path | None, callbacks: Iterable[SearchCallback] = (),
                 settings: dict[str, Any] | None = None):
        self.space = space
        self.child = child
        self.policy = policy
        self.config = config
        self.runtime = runtime
        super().__init__(config.epochs, checkpoint_path, callbacks,
                         fingerprint(search=asdict(config), seed=runtime.seed, space=space.name, **(settings or {})))

    def state_dict(self) -> dict:
        return {"child": self.child.state_dict(), "policy": self.policy.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.child.load_state_dict(state["child"])
        self.policy.load_state_dict(state["policy"])

    def run(self) -> SearchResult:
        resumed_from = self.run_epochs()
        return SearchResult(history=self.history, final_architecture=self.policy.final_architecture(),
                            resumed_from=resumed_from)

    def run_epoch(self, epoch: int) -> EpochReport:
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
                self.progress("child", i, child_steps)
            rt.synchronize()
            t1 = time.perf_counter()
            for i, batch in enumerate(self.child.policy_batches(epoch), 1):
                policy_step(batch)
                self.progress("policy", i, policy_steps)
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
                self.progress("child", i, child_steps)
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
