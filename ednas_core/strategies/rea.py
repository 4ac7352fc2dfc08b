"""Regularized evolution (aging evolution; Real, Aggarwal, Huang and Le, "Regularized Evolution for Image
Classifier Architecture Search", AAAI 2019, Algorithm 1), as NAS-Bench-201 runs it: D-X-Y/AutoDL-Projects
exps/algos-v2/REA.py (`--ea_population 10 --ea_sample_size 3`, the settings of NB201's REA row; also
exps/NATS-algos/regularized_ea.py for NATS-Bench), function regularized_evolution:

- the population starts as `population_size` uniformly random architectures, each scored once;
- every later cycle draws `sample_size` members uniformly WITH replacement (random.choice per draw), takes the
  fittest of them (the first drawn among equals) as the parent, scores one mutated copy of it, appends it to
  the population and removes the OLDEST member (not the worst: the ageing that regularizes);
- mutation (mutate_topology_func): one edge of the cell gets another operation, `none` included. Here the edge
  is drawn uniformly among all edges of the full DAG and its code (ednas_core/spaces/base.py edge_codes:
  0 = absent / `none`, 1 + op index) becomes one of the other codes, uniformly; AutoDL draws a node first,
  then an edge of it, which favours the edges of the earlier nodes. On a fixed-input space (CNN, RNN cells)
  a mutation, as in Real et al.'s hidden-state / op mutations, changes either one input of one node (to a
  predecessor it does not use yet; the edge keeps its op) or the op of one selected edge, with probability 1/2
  each (an input mutation falls back to an op mutation where no node can take another input); several cell
  types: the cell type is drawn uniformly first;
- the answer is the best architecture ever scored (`max(history, key=accuracy)`).

The child is scored as regularized_ea.py scores it (`simulate_train_eval(child.arch, ...)`); a version of
algos-v2/REA.py scores `model.arch`, the initial population's last member, for every child, a slip the later
file corrects.

With the search loop: one architecture per proposal (the initial population in as few proposals as the loop
allows). Weight-sharing mode trains the shared weights on a uniformly drawn member of the population (a uniform
architecture before the first score); members are not re-scored when the weights change, as in Algorithm 1.
Randomness comes from the loop's generator only, and the state holds the population in age order, so a resumed
search continues exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..knobs import ConfigError, knob
from ..spaces import Architecture, SearchSpace
from .base import Strategy, check_rewards, choice_frequencies, seeded_generator, uniform_architecture


@dataclass(frozen=True)
class REAConfig:
    """search.rea: NB201's REA settings (AutoDL-Projects exps/algos-v2/REA.py arguments in brackets)."""

    population_size: int = knob(10, ge=1)   # REA.py --ea_population 10
    sample_size: int = knob(3, ge=1)        # REA.py --ea_sample_size 3 (drawn with replacement: may exceed it)


# --- mutation (a pure function of an architecture and a generator) ---------------------------------------------


def _randint(n: int, generator: torch.Generator) -> int:
    return int(torch.randint(n, (1,), generator=generator))


def mutate(space: SearchSpace, arch: Architecture, generator: torch.Generator) -> Architecture:
    """A copy of `arch` with one decision changed (see the module docstring); never `arch` itself."""
    cell = space.cell
    cell_type = space.cell_types[_randint(len(space.cell_types), generator)]
    child = dict(arch)
    if cell.any_subset:  # one edge's code -> another code (absent / one of the ops)
        codes = list(cell.edge_codes(arch[cell_type]))
        edge = _randint(cell.n_edges, generator)
        new = _randint(len(cell.ops), generator)  # one of the len(ops) codes other than the current one
        codes[edge] = new + (new >= codes[edge])
        child[cell_type] = cell.cell_from_edge_codes(codes)
        return child
    nodes = [list(pairs) for pairs in arch[cell_type]]
    movable = [k for k, node in enumerate(cell.node_ids) if len(nodes[k]) < node]  # a predecessor left to take
    if movable and (len(cell.ops) < 2 or _randint(2, generator) == 0):  # input mutation
        k = movable[_randint(len(movable), generator)]
        slot = _randint(len(nodes[k]), generator)
        used = {p for p, _ in nodes[k]}
        free = [p for p in range(cell.node_ids[k]) if p not in used]
        nodes[k][slot] = (free[_randint(len(free), generator)], nodes[k][slot][1])
    else:  # op mutation of one selected edge
        if len(cell.ops) < 2:
            raise ValueError(f"{space.name}: nothing to mutate (one op and every node uses all its predecessors)")
        k = _randint(cell.n_nodes, generator)
        slot = _randint(len(nodes[k]), generator)
        pred, op = nodes[k][slot]
        new = _randint(len(cell.ops) - 1, generator)
        nodes[k][slot] = (pred, new + (new >= op))
    child[cell_type] = cell.validate(tuple(tuple(pairs) for pairs in nodes), label=f"{space.name}.{cell_type}")
    return child


class REAStrategy(Strategy):
    name = "rea"
    distribution_kind = "population"
    distribution_title = "REA population (choice frequencies)"
    answer_title = "the best cell it scored"
    signal_panels = ((("fitness_mean", "fitness_max", "best_fitness_so_far"), "REA population: fitness", None),
                     (("unique_share",), "REA population: distinct share", "share"))

    def __init__(self, space: SearchSpace, settings: REAConfig, seed: int):
        super().__init__(space, settings, seed)
        self.seed = seed
        self.population: list[tuple[Architecture, float]] = []  # oldest first
        self.best: tuple[Architecture, float] | None = None      # best ever scored (the first of equals)
        self.scored = 0                                           # architectures observed in the whole run
        self.epoch_scored = 0
        self.epoch_mutants = 0

    @classmethod
    def settings_from(cls, search_config: Any) -> REAConfig:
        settings = getattr(search_config, "rea", None)
        if not isinstance(settings, REAConfig):
            raise ConfigError(f"{type(search_config).__name__} has no `rea` section (REAConfig: population_size, "
                              "sample_size); add it to the search section in ednas_core/config.py and params.yaml")
        return settings

    # --- the epoch protocol ------------------------------------------------------------------------------

    def begin_epoch(self, epoch: int) -> None:
        self.epoch_scored = self.epoch_mutants = 0

    def train_architecture(self, generator: torch.Generator) -> Architecture:
        if not self.population:
            return uniform_architecture(self.space, generator)
        return self.population[_randint(len(self.population), generator)][0]

    def propose(self, generator: torch.Generator, limit: int) -> list[Architecture]:
        missing = self.settings.population_size - len(self.population)
        if missing > 0:  # the initial population (uniformly random)
            return [uniform_architecture(self.space, generator) for _ in range(min(missing, limit))]
        sample = [_randint(len(self.population), generator) for _ in range(self.settings.sample_size)]
        parent = max(sample, key=lambda i: self.population[i][1])  # max keeps the first drawn among equals
        self.epoch_mutants += 1
        return [mutate(self.space, self.population[parent][0], generator)]

    def observe(self, archs: list[Architecture], rewards: list[float]) -> None:
        check_rewards(archs, rewards)
        for arch, reward in zip(archs, rewards):
            self.population.append((arch, float(reward)))
            if len(self.population) > self.settings.population_size:
                self.population.pop(0)  # the oldest dies
            if self.best is None or reward > self.best[1]:
                self.best = (arch, float(reward))
        self.scored += len(archs)
        self.epoch_scored += len(archs)

    def epoch_statistics(self) -> dict[str, float]:
        fitness = [f for _, f in self.population]
        keys = {self.space.arch_key(a) for a, _ in self.population}
        return {
            "fitness_mean": float(np.mean(fitness)) if fitness else math.nan,
            "fitness_max": max(fitness) if fitness else math.nan,
            "fitness_min": min(fitness) if fitness else math.nan,
            "best_fitness_so_far": self.best[1] if self.best else math.nan,
            "unique_share": len(keys) / len(fitness) if fitness else math.nan,
            "mutants": float(self.epoch_mutants),
            "scored": float(self.scored),
        }

    # --- what it found -----------------------------------------------------------------------------------

    def probabilities(self) -> dict[str, np.ndarray]:
        return choice_frequencies(self.space, [a for a, _ in self.population])

    def final_architecture(self) -> Architecture:
        if self.best is None:  # nothing scored yet: a fixed uniform draw of the seed
            return uniform_architecture(self.space, seeded_generator(self.seed, "rea-unscored"))
        return self.best[0]

    def derive_candidates(self, generator: torch.Generator, samples: int) -> list[Architecture]:
        """The population, fittest first (equals: the older first)."""
        ranked = sorted(self.population, key=lambda member: -member[1])
        return [a for a, _ in ranked[:samples]]

    # --- resume --------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"population": [[arch, fitness] for arch, fitness in self.population],
                "best": None if self.best is None else [self.best[0], self.best[1]],
                "scored": self.scored, "epoch_scored": self.epoch_scored, "epoch_mutants": self.epoch_mutants}

    def load_state_dict(self, state: dict) -> None:
        self.population = [(self.space.validate(arch), float(fitness)) for arch, fitness in state["population"]]
        best = state["best"]
        self.best = None if best is None else (self.space.validate(best[0]), float(best[1]))
        self.scored = int(state["scored"])
        self.epoch_scored, self.epoch_mutants = int(state["epoch_scored"]), int(state["epoch_mutants"])


__all__ = ["REAConfig", "REAStrategy", "mutate"]
