"""The interface every search strategy implements, and the helpers they share.

The search loop (ednas_core/search.py) drives any strategy through one protocol per epoch:

    strategy.begin_epoch(epoch)
    child phase   for every training batch:    arch = strategy.train_architecture(gen); child.train_step(arch, b)
    reward phase  n = strategy.rewards_wanted(epoch, policy_batches)
                  while fewer than n rewards:  archs = strategy.propose(gen, n - done)   # 1..n-done archs
                                               rewards = [child.reward(a, next validation batch) for a in archs]
                                               strategy.observe(archs, rewards)
    strategy.epoch_statistics() -> {name: float}, the same names every epoch (MLflow, metrics CSV)

and strategy.close() once the epochs are over (or have failed): a strategy that learns in the background (NAO's
overlapped rounds) stops there.

A sampling policy (EDNAS, ENAS, random) proposes samples of its distribution and learns from their rewards (EDNAS
from each one, ENAS from each window of num_aggregate); a population method (EvNAS, NAO, REA) proposes the
individuals it wants scored (REA: its initial population, then one mutant at a time) and forms its next
generation in `observe`. `gen` is a torch.Generator the loop seeds from (run seed, epoch): a strategy draws all
its randomness from it (or from state it saves), so that a search killed after epoch k and resumed from its
checkpoint ends identical to one that was not.

Capabilities in the style of Archai / NASLib: the abstract methods are what every strategy must do; the rest
have defaults that fit most strategies (`log_prob` only means something for a distribution over cells).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Callable, ClassVar, Iterable

import numpy as np
import torch

from ..seeds import seed_for
from ..spaces import Architecture, SearchSpace


class Strategy(ABC):
    """How architectures are chosen for the shared weights to train on and for the rewards to judge."""

    name: ClassVar[str]
    # what probabilities() returns, for figure titles: 'policy' (a learned distribution) or 'population'
    # (frequencies of the choices among the architectures the strategy holds); and the title itself
    distribution_kind: ClassVar[str] = "policy"
    distribution_title: ClassVar[str] = "policy (softmax)"
    # the strategy's own learning signals for the report's search curves, one panel each: (keys of its
    # epoch_statistics, title, y label; None = the task's reward axis)
    signal_panels: ClassVar[tuple[tuple[tuple[str, ...], str, str | None], ...]] = ()
    # what the `baseline` of epoch_statistics averages, for the report (a strategy that keeps one)
    baseline_title: ClassVar[str] = "moving average of the reward"
    # the keys of the task's search section that settings_from reads besides the strategy's own section
    # (search.<name>.*): EDNAS's policy_* keys; nothing else reads them (strategies.key_owners)
    search_keys: ClassVar[tuple[str, ...]] = ()
    # what final_architecture() is as the strategy's own answer, for the report ("the policy's most probable cell");
    # "" for a strategy without one that improves as it learns (random search: the argmax of a uniform
    # distribution, one fixed cell), which the search's AnswerProbe does not judge
    answer_title: ClassVar[str] = "its final architecture"

    def __init__(self, space: SearchSpace, settings: Any, seed: int):
        """`settings`: the strategy's own section of params.yaml (see settings_from); `seed` initialises
        whatever the strategy learns (network weights, initial population)."""
        self.space = space
        self.settings = settings

    @classmethod
    def settings_from(cls, search_config: Any) -> Any:
        """The strategy's own settings out of a task's search section (by default `search.<name>`)."""
        return getattr(search_config, cls.name)

    # --- the epoch protocol ------------------------------------------------------------------------------

    def begin_epoch(self, epoch: int) -> None:
        """Called before the epoch's child phase; resets the epoch's statistics."""

    @abstractmethod
    def train_architecture(self, generator: torch.Generator) -> Architecture:
        """The architecture the shared weights train on for one child step."""

    def rewards_wanted(self, epoch: int, policy_batches: int) -> int:
        """How many rewards (one validation batch each) the strategy wants this epoch; `policy_batches` is
        one pass over the validation split (EDNAS's policy phase). 0 skips the reward phase."""
        return policy_batches

    @abstractmethod
    def propose(self, generator: torch.Generator, limit: int) -> list[Architecture]:
        """Between 1 and `limit` architectures to score next."""

    @abstractmethod
    def observe(self, archs: list[Architecture], rewards: list[float]) -> None:
        """The rewards of the architectures of the last `propose`, in order; learn from them."""

    @abstractmethod
    def epoch_statistics(self) -> dict[str, float]:
        """The strategy's learning signals of the epoch (same keys every epoch; NaN when not measured)."""

    # --- what it found -----------------------------------------------------------------------------------

    @abstractmethod
    def probabilities(self) -> dict[str, np.ndarray]:
        """'<cell>_node' [n_nodes, max_combos] and '<cell>_edge' [n_edges, n_ops] of every cell type: the
        learned distribution (policy) or the choice frequencies of the population; rows sum to 1."""

    @abstractmethod
    def final_architecture(self) -> Architecture:
        """The single architecture the strategy would answer with (most probable, best individual)."""

    @abstractmethod
    def derive_candidates(self, generator: torch.Generator, samples: int) -> list[Architecture]:
        """What derive scores: samples of a learned distribution, the final population or the top of a
        pool; best first where the strategy ranks them. May be fewer than `samples`."""

    def place(self, device: torch.device) -> None:
        """The search's device (called once by the search loop, before any state is loaded): a strategy that
        can compute there may move to it. By default a strategy stays on the CPU."""

    # the search loop's progress display (phase, step, total, unit; host-only), set by the loop through
    # attach_progress: a strategy whose learning takes long inside observe (NAO's controller training) reports
    # its steps there, so that a log does not fall silent for minutes
    _progress: Callable[[str, int, int, str], None] | None = None

    def attach_progress(self, progress: Callable[[str, int, int, str], None] | None) -> None:
        self._progress = progress

    def report_progress(self, phase: str, step: int, total: int, unit: str = "batch") -> None:
        """Step `step` of `total` (each one `unit`) of a phase of the strategy's own work is done (0: it
        begins)."""
        if self._progress is not None:
            self._progress(phase, step, total, unit)

    def close(self) -> None:
        """The search loop is over (finished, failed or killed): a strategy that works in the background stops
        (its state_dict stays what it was). By default nothing to do."""

    def log_prob(self, arch: Architecture) -> float:
        """log P(arch) under the strategy's distribution; NaN for strategies without one."""
        return math.nan

    # --- resume --------------------------------------------------------------------------------------------

    @abstractmethod
    def state_dict(self) -> dict:
        """Everything that determines what the strategy does next (tensors and plain Python values)."""

    @abstractmethod
    def load_state_dict(self, state: dict) -> None:
        ...


def seeded_generator(seed: int, *keys: object) -> torch.Generator:
    """A CPU generator seeded from (seed, *keys) by hashing: any run seed (up to 63 bits, as the runtime derives
    them) and any number of streams, without overflow or overlap between streams."""
    return torch.Generator().manual_seed(seed_for(int(seed), *keys))


def check_rewards(archs: list[Architecture], rewards: list[float]) -> None:
    """observe()'s argument checks: one finite reward per architecture."""
    if len(archs) != len(rewards):
        raise ValueError(f"got {len(rewards)} rewards for {len(archs)} architectures")
    for r in rewards:
        if not math.isfinite(r):
            raise FloatingPointError(f"policy reward is {r}; the child network has diverged")


def mean_or_nan(values: Iterable[float]) -> float:
    values = list(values)
    return float(np.mean(values)) if values else math.nan


def choice_frequencies(space: SearchSpace, archs: Iterable[Architecture]) -> dict[str, np.ndarray]:
    """How often each input combination (per node) and each operation (per edge, among the architectures that
    select that edge) occurs in `archs`, as rows that sum to 1 (uniform where nothing was observed): the
    same arrays as a policy's probabilities(), for a population."""
    cell = space.cell
    node = {t: np.zeros((cell.n_nodes, cell.max_combos)) for t in space.cell_types}
    edge = {t: np.zeros((cell.n_edges, len(cell.ops))) for t in space.cell_types}
    for arch in archs:
        for t in space.cell_types:
            combos, edge_ids, ops = cell.choices_of(arch[t])
            node[t][np.arange(cell.n_nodes), combos] += 1
            edge[t][edge_ids, ops] += 1
    out = {}
    for t in space.cell_types:
        for k, node_combos in enumerate(cell.combos):
            row = node[t][k, : len(node_combos)]
            node[t][k, : len(node_combos)] = row / row.sum() if row.sum() else 1.0 / len(node_combos)
        totals = edge[t].sum(1, keepdims=True)
        edge[t] = np.where(totals > 0, edge[t] / np.maximum(totals, 1), 1.0 / len(cell.ops))
        out[f"{t}_node"], out[f"{t}_edge"] = node[t], edge[t]
    return out


def distribution_entropy(probabilities: dict[str, np.ndarray]) -> dict[str, float]:
    """Summed entropy (nats) of every row of every probabilities() array: 'entropy_<key>'."""
    out = {}
    for key, p in probabilities.items():
        p = np.asarray(p, dtype=np.float64)
        terms = np.where(p > 0, -p * np.log(np.where(p > 0, p, 1.0)), 0.0)
        out[f"entropy_{key}"] = float(terms.sum())
    return out


def uniform_architecture(space: SearchSpace, generator: torch.Generator) -> Architecture:
    """A uniformly random architecture: a combination per node and an op per edge, each uniform (every cell
    equally likely); any-subset cells (NB201): each edge absent or one of the ops, uniformly (every cell equally
    likely: a uniform combination would favour cells with fewer edges)."""
    cell = space.cell
    arch = {}
    for t in space.cell_types:
        if cell.any_subset:
            codes = torch.randint(len(cell.ops) + 1, (cell.n_edges,), generator=generator).tolist()
            arch[t] = cell.cell_from_edge_codes(codes)
            continue
        combos = [int(torch.randint(len(c), (1,), generator=generator)) for c in cell.combos]
        ops = torch.randint(len(cell.ops), (cell.n_edges,), generator=generator).tolist()
        arch[t] = cell.cell_from_choices(combos, ops)
    return arch


def to_tokens(space: SearchSpace, arch: Architecture) -> list[int]:
    """An architecture as a flat token sequence (the encoding of NAO's encoder): for each cell type, for each
    searched node, (pred, op) of each selected edge, preds ascending; any-subset cells (NB201): for each cell type
    its edge codes (CellSpace.edge_codes: 0 = no edge, 1 + op index), n_edges tokens per cell type."""
    if space.cell.any_subset:
        return [c for t in space.cell_types for c in space.cell.edge_codes(arch[t])]
    return [v for t in space.cell_types for pairs in arch[t] for pred, op in pairs for v in (pred, op)]


def from_tokens(space: SearchSpace, tokens: list[int]) -> Architecture:
    """Inverse of to_tokens; raises ValueError when the tokens are not a valid architecture of `space`."""
    cell = space.cell
    per_cell = cell.n_edges if cell.any_subset else 2 * cell.n_nodes * cell.inputs_per_node
    if len(tokens) != per_cell * len(space.cell_types):
        raise ValueError(f"{space.name}: expected {per_cell * len(space.cell_types)} tokens, got {len(tokens)}")
    arch = {}
    for c, t in enumerate(space.cell_types):
        flat = tokens[c * per_cell : (c + 1) * per_cell]
        if cell.any_subset:
            arch[t] = cell.cell_from_edge_codes(flat, label=f"{space.name}.{t}")
            continue
        pairs = [(flat[2 * k], flat[2 * k + 1]) for k in range(per_cell // 2)]
        nodes = [tuple(pairs[n * cell.inputs_per_node : (n + 1) * cell.inputs_per_node]) for n in range(cell.n_nodes)]
        arch[t] = tuple(nodes)
    return space.validate(arch)
