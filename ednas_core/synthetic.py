"""A search child with no network: child steps only count, and the reward of an architecture is a function of
the architecture (a planted optimum for tests; a lookup table is the same idea). The real search loop runs over
it in milliseconds per epoch, so strategies are tested and their host-side cost is benchmarked through the same
code path a real search takes (tests/synthetic_search.py, benchmarks/run.py's `strategies` section)."""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from .spaces import Architecture, SearchSpace
from .strategies.base import uniform_architecture

Reward = Callable[[Architecture], float]


def planted_architecture(space: SearchSpace, seed: int = 123) -> Architecture:
    """A fixed, uniformly drawn architecture: the unique best one of planted_reward."""
    return uniform_architecture(space, torch.Generator().manual_seed(seed))


def planted_reward(space: SearchSpace, planted: Architecture) -> Reward:
    """Share of the planted decisions an architecture makes: per cell type and node, 1 for the planted input
    combination and 1 for each planted (input, op) edge it has. Any-subset cells (NB201), whose nodes have no
    fixed number of edges: the share of the edges of the full DAG whose code (CellSpace.edge_codes: absent, or
    which op) is the planted one. 1.0 only for the planted architecture."""
    cell = space.cell

    if cell.any_subset:
        target = {t: cell.edge_codes(planted[t]) for t in space.cell_types}

        def edge_reward(arch: Architecture) -> float:
            hits = sum(a == b for t in space.cell_types for a, b in zip(cell.edge_codes(arch[t]), target[t]))
            return hits / (cell.n_edges * len(space.cell_types))

        return edge_reward

    def reward(arch: Architecture) -> float:
        hits = total = 0
        for t in space.cell_types:
            for mine, target in zip(arch[t], planted[t]):
                hits += tuple(p for p, _ in mine) == tuple(p for p, _ in target)
                hits += sum(pair in target for pair in mine)
                total += 1 + cell.inputs_per_node
        return hits / total

    return reward


class SyntheticChild:
    """The Child protocol of the search loop with no weights: child steps only count, a reward is `reward(arch)`
    plus optional Gaussian noise drawn from a generator seeded per (epoch, batch)."""

    sample_unit = "images"

    def __init__(self, reward: Reward, child_steps: int = 10, policy_batches: int = 20, noise: float = 0.0,
                 seed: int = 0):
        self.reward_fn = reward
        self.child_steps = child_steps
        self.policy_batches_per_epoch = policy_batches
        self.noise = noise
        self.seed = seed
        self.trained: list[Architecture] = []
        self.scored: list[Architecture] = []
        self._epoch = 0

    def start_epoch(self, epoch: int) -> float:
        self._epoch = epoch
        return 0.0

    def train_batches(self, epoch: int) -> Iterator[int]:
        return iter(range(self.child_steps))

    def policy_batches(self, epoch: int) -> Iterator[int]:
        return iter(range(self.policy_batches_per_epoch))

    def train_step(self, arch: Architecture, batch: int) -> None:
        self.trained.append(arch)

    def reward(self, arch: Architecture, batch: int) -> float:
        self.scored.append(arch)
        value = self.reward_fn(arch)
        if self.noise:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + self._epoch * 10_007 + len(self.scored))
            value += self.noise * float(torch.randn((), generator=g))
        return value

    def epoch_metrics(self) -> dict[str, float]:
        return {"child_loss": 0.0, "child_acc": 0.0}

    def state_dict(self) -> dict:
        return {"scored": len(self.scored)}

    def load_state_dict(self, state: dict) -> None:
        self.scored = [None] * state["scored"]  # only the count matters (noise seeds)

    @property
    def images_per_epoch(self) -> tuple[int, int]:
        return self.child_steps, self.policy_batches_per_epoch

    @property
    def steps_per_epoch(self) -> tuple[int, int]:
        return self.child_steps, self.policy_batches_per_epoch
