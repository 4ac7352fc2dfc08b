"""The alternating search loop of any strategy (ednas_core/strategies), with an atomic checkpoint every epoch
and exact resume.

Each epoch (alternate=epoch, the EDNAS authors' order): one pass of child steps over the training split, each on
the architecture the strategy gives (EDNAS: a fresh sample of the policy), then the reward phase: the strategy
proposes architectures, each is scored on the next validation minibatch (one no-grad forward; the validation
split is cycled when a strategy wants more rewards than it has batches), and the strategy observes the rewards
(EDNAS: one REINFORCE step per reward, one pass over the validation split). alternate=step spreads the reward
phase evenly over the child steps (EDNAS: one policy step after every child step).

Every epoch's randomness (batch order, augmentation, sampled architectures, dropout) is derived from
(seed, epoch), so a run killed after epoch k and resumed from its checkpoint ends identical to one that was not.

Several processes (torchrun, ednas_core.distributed): every rank runs this loop with the same strategy seed and
the same host generators, so every rank samples the same architectures; this is checked (a hash of the epoch's
first architecture before its first step, and of all of the epoch's architectures at its end: RankMismatch). Each
rank trains and scores on its shard of the batches (the child averages the gradients); the rewards of a round are
averaged over the ranks before the strategy observes them, so its update is the same on every rank.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol, Sequence

import numpy as np
import torch

from . import distributed
from .config import SearchConfig
from .checkpoint import StateFileError, applying, require_keys
from .epochs import CheckpointedLoop, EpochCallback, NonFiniteError, fingerprint
from .strategies import Strategy, strategy_settings
from .strategies.base import distribution_entropy
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
    def images_per_epoch(self) -> tuple[int, int]: ...  # (child split, policy split), in sample_unit
    # what images_per_epoch counts, naming the throughput metrics (child_<unit>_per_s): images, tokens, look-ups
    sample_unit: str
    @property
    def steps_per_epoch(self) -> tuple[int, int]: ...   # (child batches, policy batches)
    # optional: `reward_budget: int` caps the rewards of the whole run (a tabular benchmark's query budget);
    # once spent, later epochs score nothing. A child without child steps (0 batches) trains no weights.


@dataclass
class EpochReport:
    """What a callback receives after each epoch. `probabilities` holds the strategy's distribution over choices
    (Strategy.probabilities: EDNAS's softmax of every policy vector, a population's choice frequencies);
    `counts[cell]` is [n_edges, n_ops]: how often each (edge, op) was used this epoch, in the child phase and
    the reward phase together."""

    epoch: int                 # 0-based index of the finished epoch
    epochs: int
    metrics: dict[str, float]
    probabilities: dict[str, np.ndarray]
    counts: dict[str, np.ndarray]


# on_resume(history), on_progress(phase, step, total, unit), on_epoch_end(EpochReport)
SearchCallback = EpochCallback

# Called with the 0-based epoch at the end of every epoch (after the child and reward phases); its metrics join
# the epoch's. It must return the same keys every epoch (NaN where it measured nothing: periodic_probe).
EpochProbe = Callable[[int], dict[str, float]]
# Called at the end of every epoch (after the EpochProbe) with the strategy's current answer, its
# final_architecture(): what it measures of that cell (e.g. its true accuracy in a benchmark table) joins the
# epoch's metrics. Not called for a strategy without an answer of its own (Strategy.answer_title "": random search).
AnswerProbe = Callable[[Architecture], dict[str, float]]


def periodic_probe(measure: Callable[[], dict[str, float]], keys: Sequence[str], every: int,
                   epochs: int) -> EpochProbe:
    """An EpochProbe that runs `measure` every `every` epochs and at the last epoch, and gives NaN for `keys`
    in the other epochs (so that every epoch has the same keys)."""
    if every < 1:
        raise ValueError(f"a probe runs every N >= 1 epochs, got every={every}")
    keys = tuple(keys)

    def probe(epoch: int) -> dict[str, float]:
        if (epoch + 1) % every and epoch + 1 != epochs:
            return {k: math.nan for k in keys}
        measured = measure()
        if set(measured) != set(keys):
            raise ValueError(f"probe returned {sorted(measured)}; expected {sorted(keys)}")
        return {k: float(measured[k]) for k in keys}

    return probe


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
    """Runs the alternating search of one child (the task's weight-sharing network) and one strategy."""

    what = "search"
    report_type = EpochReport

    def __init__(self, space: SearchSpace, child: Child, strategy: Strategy, config: SearchConfig,
                 runtime: Runtime, checkpoint_path: Path | None, callbacks: Iterable[SearchCallback] = (),
                 settings: dict[str, Any] | None = None, epoch_probe: EpochProbe | None = None,
                 answer_probe: AnswerProbe | None = None):
        """`epoch_probe` (optional) measures something at the end of each epoch (e.g. ranking.RankingProbe),
        `answer_probe` the strategy's answer of the epoch; their metrics join the epoch's, their time is
        `probe_time_s`, outside child_time_s / policy_time_s. Neither changes what the search computes."""
        self.space = space
        self.child = child
        self.strategy = strategy
        self.config = config
        self.runtime = runtime
        strategy.place(runtime.device)
        strategy.attach_progress(self.progress)
        self.epoch_probe = epoch_probe
        self.answer_probe = answer_probe if strategy.answer_title else None
        super().__init__(config.epochs, checkpoint_path, callbacks,
                         fingerprint(search=strategy_settings(config), seed=runtime.seed, space=space.name,
                                     **(settings or {})))

    def state_dict(self) -> dict:
        return {"child": self.child.state_dict(), "policy": self.strategy.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.child.load_state_dict(state["child"])
        self.strategy.load_state_dict(state["policy"])

    def run(self) -> SearchResult:
        try:
            resumed_from = self.run_epochs()
        finally:
            self.strategy.close()
        return SearchResult(history=self.history, final_architecture=self.strategy.final_architecture(),
                            resumed_from=resumed_from)

    def run_epoch(self, epoch: int) -> EpochReport:
        rt = self.runtime
        rt.seed_epoch(epoch, "search")
        arch_gen = rt.generator("search-arch", epoch)
        lr = self.child.start_epoch(epoch)
        strategy = self.strategy
        t_begin = time.perf_counter()
        strategy.begin_epoch(epoch)  # its own time counts with the reward phase's (NAO: waiting for its EPD)
        begin_time = time.perf_counter() - t_begin
        counts = {t: np.zeros((self.space.cell.n_edges, len(self.space.cell.ops)), np.int64)
                  for t in self.space.cell_types}
        rewards: list[float] = []
        child_steps, policy_batches = self.child.steps_per_epoch
        n_child, n_policy_images = self.child.images_per_epoch
        step_mode = self.config.alternate == "step"
        wanted = strategy.rewards_wanted(epoch, child_steps if step_mode else policy_batches)
        budget = getattr(self.child, "reward_budget", None)
        if budget is not None:  # a run-wide reward budget (the tabular child): at most policy_batches rewards an
            # epoch, so that the budget spreads over every epoch, and none beyond what the epochs before spent
            # (restored with the history); a strategy that wanted more keeps the rest for the next epoch
            spent = sum(int(r.metrics["reward_count"]) for r in self.history)
            wanted = max(0, min(wanted, policy_batches, budget - spent))
        policy_iter = _cycle(lambda: self.child.policy_batches(epoch))
        ranks = distributed.world()
        sampled = hashlib.sha256()  # several processes: every architecture of the epoch, compared at its end
        first = [True]

        def child_step(batch: Batch) -> None:
            arch = strategy.train_architecture(arch_gen)
            if ranks.distributed:
                if first[0]:  # before the first gradient all-reduce, whose sizes depend on the architecture
                    distributed.check_same(arch, f"search epoch {epoch + 1}: the first sampled architecture")
                    first[0] = False
                sampled.update(repr(arch).encode())
            _count(counts, self.space, arch)
            self.child.train_step(arch, batch)

        def reward_rounds(until: int) -> None:
            """Propose / score / observe until `until` rewards of the epoch are in."""
            while len(rewards) < until:
                archs = strategy.propose(arch_gen, until - len(rewards))
                if not 1 <= len(archs) <= until - len(rewards):
                    raise RuntimeError(f"strategy {strategy.name} proposed {len(archs)} architectures; "
                                       f"expected 1..{until - len(rewards)}")
                scores = []
                for arch in archs:
                    _count(counts, self.space, arch)
                    if ranks.distributed:
                        sampled.update(repr(arch).encode())
                    scores.append(self.child.reward(arch, next(policy_iter)))
                # several processes: each rank scored its shard of the policy batch; the mean over the ranks is
                # the reward of the whole batch, the same on every rank, so every strategy steps identically
                scores = distributed.mean_of_host_values(scores, rt.device)
                for reward in scores:
                    if not math.isfinite(reward):
                        raise NonFiniteError(f"search epoch {epoch + 1}: policy reward is {reward}; "
                                             "the shared weights diverged (lower search.lr or search.grad_clip)")
                strategy.observe(archs, scores)
                rewards.extend(scores)
                if not step_mode:  # step mode: one "child" phase, the reward rounds inside its steps
                    self.progress("policy", len(rewards), wanted)

        self.progress("child", 0, child_steps)
        t0 = time.perf_counter()
        if not step_mode or child_steps == 0:
            for i, batch in enumerate(self.child.train_batches(epoch), 1):
                child_step(batch)
                self.progress("child", i, child_steps)
            rt.synchronize()
            t1 = time.perf_counter()
            self.progress("policy", 0, wanted)
            reward_rounds(wanted)
            t2 = time.perf_counter()
            child_time, policy_time = t1 - t0, begin_time + t2 - t1
        else:  # the reward phase spread evenly over the child steps
            child_time, policy_time = 0.0, begin_time
            for i, batch in enumerate(self.child.train_batches(epoch), 1):
                a = time.perf_counter()
                child_step(batch)
                b = time.perf_counter()
                reward_rounds(-(-wanted * i // child_steps))
                child_time += b - a
                policy_time += time.perf_counter() - b
                self.progress("child", i, child_steps)
            rt.synchronize()
        n_policy = len(rewards) * n_policy_images / max(policy_batches, 1)
        if ranks.distributed:  # every architecture of the epoch, child and reward phases, the same on every rank
            distributed.check_same(sampled.hexdigest(), f"search epoch {epoch + 1}: the sampled architectures")
            n_child, n_policy = n_child * ranks.size, n_policy * ranks.size  # images of all ranks

        metrics = self.child.epoch_metrics()
        if child_steps and not math.isfinite(metrics["child_loss"]):
            raise NonFiniteError(f"search epoch {epoch + 1}: child loss is {metrics['child_loss']}; "
                                 "the shared weights diverged (lower search.lr or search.grad_clip)")
        probabilities = strategy.probabilities()
        entropies = distribution_entropy(probabilities)
        unit = self.child.sample_unit
        metrics.update({
            "reward": float(np.mean(rewards)) if rewards else math.nan,
            "reward_count": float(len(rewards)),
            "baseline": math.nan,  # a strategy with a reward baseline reports it in its statistics
            **strategy.epoch_statistics(),
            "entropy": float(sum(entropies.values())),
            **entropies,
            "lr": lr,
            "child_time_s": child_time,
            "policy_time_s": policy_time,
            "epoch_time_s": child_time + policy_time,
            f"child_{unit}_per_s": n_child / child_time if child_time > 0 else math.nan,
            f"policy_{unit}_per_s": n_policy / policy_time if policy_time > 0 else math.nan,
        })
        if self.epoch_probe is not None or self.answer_probe is not None:  # after the phases and their timing:
            t3 = time.perf_counter()                                         # they judge the epoch's outcome
            if self.epoch_probe is not None:
                metrics.update(self.epoch_probe(epoch))
            if self.answer_probe is not None:
                metrics.update(self.answer_probe(strategy.final_architecture()))
            rt.synchronize()
            metrics["probe_time_s"] = time.perf_counter() - t3
        return EpochReport(epoch=epoch, epochs=self.config.epochs, metrics=metrics,
                           probabilities=probabilities, counts=counts)


def load_search_state(child: Child, strategy: Strategy, state: dict, source: Path, fix: str) -> None:
    """Puts a finished search's state (data/search/supernet.safetensors, read from `source`) into a freshly built
    child and strategy, for derive; a state that does not fit raises one StateFileError line naming `source` and
    saying `fix`. A state that names the strategy that wrote it (`strategy`, since 2026-12-06) must be of
    `strategy`'s kind: another strategy's state (derive run alone after search.strategy was changed) is refused
    with both names rather than with the first entry it lacks."""
    require_keys(state, ("child", "policy"), source, fix)
    written = state.get("strategy")
    if isinstance(written, str) and written != strategy.name:
        raise StateFileError(f"{source} holds the state of a search with strategy {written}; the params ask for "
                             f"strategy {strategy.name}; {fix}")
    with applying(source, fix):
        child.load_state_dict(state["child"])
        strategy.load_state_dict(state["policy"])


def _cycle(make: Any) -> Iterator[Batch]:
    while True:
        yield from make()
