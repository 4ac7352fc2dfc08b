"""EvNAS (Sinha and Chen, "Evolving neural architecture using one shot model", GECCO 2021): a genetic algorithm
over DARTS-style architecture parameters, every individual trained and judged with the shared weights of one
one-shot network. Follows the authors' code (nightstorm0909/EvNAS, commit 75e34e0: train_search.py, ga.py,
chromosomes.py, population.py, utils.py):

- an individual is one alpha matrix per cell type, [n_edges, 1 + n_ops] over the full DAG, each entry U[0, 1)
  (chromosome.generate_parameters: torch.rand(k, num_ops)); its first column is DARTS's `none` (PRIMITIVES[0]),
  which this project's CNN and RNN op lists do not have: it is never chosen, but it is a gene like the others;
- decoding (utils.derive_architecture_topk / discretize): per edge the argmax op of softmax(alpha) over all the
  columns, `none`'s included, and if that is `none` the second best (so: the best op), with the op's softmax
  weight as the edge's strength (a large `none` gene weakens its edge); per searched node the `inputs_per_node`
  strongest incoming edges (ties: the earlier predecessor, Python's stable sort);
- one generation per search epoch (train_search.py): the child phase trains the shared weights with the
  population in turn, individual (step % population_size) on child step `step` (train()); the reward phase
  scores EVERY individual, elites included, because the shared weights changed (validation() resets and
  re-measures each one); then the population is sorted by fitness and evolved (ga.py GeneticAlgorithm.evolve):
  the `elites` best are copied unchanged, every other child is the uniform crossover (each edge row from either
  parent with probability 1/2, crossover_chromosomes) of two tournament winners (tournament_selection:
  `tournament_size` distinct individuals, the fittest wins), then each of its edge rows is replaced by a fresh
  U[0, 1) row with probability `mutation_rate` (mutate_chromosome). Elites are never mutated.

On an any-subset cell (NAS-Bench-201) an individual is what the authors' NB201 code evolves (train_searchNAS201.py,
search_model_NAS201.py, chromosomesNAS201.py, gaNAS201.py, commit b965f84): one alpha matrix [n_edges, 1 + n_ops]
over the benchmark's five operations, `none` first (NAS_BENCH_201's order; column = CellSpace.edge_codes' code),
each entry U[0, 1) (TinyNetwork.arch_parameters = torch.rand(num_edge, len(search_space))); decoding is the
argmax per edge (TinyNetwork.discretize / genotype: op_names[weights.argmax()]), so an edge whose argmax is
`none` is left out and no top-k over a node's edges is taken. Crossover and mutation act on the same edge rows
with the same rates; train_searchNAS201.py's other defaults are the S1 search's (pop_size 50, tsize 10,
num_elites 1, mutate_rate 0.1, 50 epochs).

Where this differs from the authors' code:
- The shared weights train, and fitness is measured, on the decoded cell alone: one op per chosen edge, the
  project's weight-sharing network that every strategy uses (the issue's "same supernet"). The authors copy the
  one-hot discretised alpha into a DARTS one-shot network, whose forward pass takes the softmax of it
  (model_search.py Network.forward, MixedOp: sum(w * op(x))): every op of every edge runs, a chosen edge's op at
  weight e / (e + 7) = 0.28 and its other ops at 0.10, an unchosen edge's eight ops at 1/8 each (NB201's
  search_model_NAS201.py likewise: 0.405 and 0.149). So their one-shot net trains and scores a mixture that leans
  towards the individual's cell ("divert majority of the gradient information towards the given architecture",
  their README), where here it is the cell itself.
- Fitness is the reward of the decoded architecture on one validation batch, the reward every strategy is scored
  by (in eval mode); the authors take top-1 accuracy on the whole validation split (see
  `EvNASStrategy.rewards_wanted`), with the one-shot net's BatchNorm on batch statistics (train_search.py's
  validation() leaves `model.eval()` commented out; train_searchNAS201.py calls it).
- The number of generations is the search's epochs (train_search.py --epochs 50).

Randomness: the initial population and each generation's evolution draw from a torch.Generator seeded from
(seed, generation), so nothing but the generation counter is needed to resume; the loop's generator is unused
(the child phase and the reward phase are deterministic given the population).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch

from ..knobs import ConfigError, knob
from ..spaces import Architecture, SearchSpace
from .base import Strategy, check_rewards, choice_frequencies, seeded_generator


@dataclass(frozen=True)
class EvNASConfig:
    """search.evnas: the published defaults of the authors' train_search.py (argparse names in brackets)."""

    population_size: int = knob(50, ge=2)           # train_search.py --pop_size 50
    tournament_size: int = knob(10, ge=1)           # train_search.py --tsize 10
    elites: int = knob(1, ge=0)                     # train_search.py --num_elites 1
    mutation_rate: float = knob(0.1, ge=0.0, le=1.0)  # train_search.py --mutate_rate 0.1 (per edge row)
    # ga.py GeneticAlgorithm.crossover: every non-elite child is a crossover (no rate in the authors' code);
    # below 1 a child is a copy of its first parent with probability 1 - crossover_rate
    crossover_rate: float = knob(1.0, ge=0.0, le=1.0)

    def check_consistency(self, prefix: str = "search.evnas.") -> None:
        """Called by config.from_mapping: values that conflict with each other."""
        p, t, e = self.population_size, self.tournament_size, self.elites
        if t > p:
            raise ConfigError(f"{prefix}tournament_size: got {t}; expected at most {prefix}population_size ({p}) "
                              "(a tournament draws distinct individuals)")
        if e >= p:
            raise ConfigError(f"{prefix}elites: got {e}; expected fewer than {prefix}population_size ({p}) "
                              "(otherwise no child is ever bred)")


def check_settings(settings: EvNASConfig, prefix: str = "search.evnas.") -> None:
    """Every knob within its bounds and the values consistent with each other (config.from_mapping's checks,
    for settings built in code); one-line ConfigError naming the keys."""
    from ..config import from_mapping  # config imports the strategies package: import it only when used

    from_mapping(EvNASConfig, dataclasses.asdict(settings), prefix=prefix)


# --- the genetic operators (pure functions of tensors and a generator) --------------------------------------


def alpha_columns(space: SearchSpace) -> int:
    """Columns of an individual's alpha rows: `none` first (DARTS's PRIMITIVES[0]; an any-subset cell's code 0),
    then the space's ops."""
    return 1 + len(space.cell.ops)


def random_alphas(count: int, space: SearchSpace, generator: torch.Generator) -> torch.Tensor:
    """`count` individuals [count, cell types, n_edges, alpha_columns], entries U[0, 1)
    (chromosome.generate_parameters; NB201: TinyNetwork.arch_parameters)."""
    return torch.rand(count, len(space.cell_types), space.cell.n_edges, alpha_columns(space), generator=generator)


def decode(space: SearchSpace, alphas: torch.Tensor) -> list[Architecture]:
    """DARTS decoding of individuals [P, cell types, n_edges, 1 + n_ops] (utils.derive_architecture_topk): per
    edge the argmax column of softmax(alpha), the second best when that is `none` (column 0), i.e. the best op,
    with its softmax weight over all the columns as the edge's strength; per node the inputs_per_node strongest
    incoming edges (ties: the earlier predecessor first; argmax ties: the first op). Any-subset cells: per edge the
    argmax column is its code (0: `none`, the edge left out; search_model_NAS201.py TinyNetwork.genotype)."""
    cell = space.cell
    probs = torch.softmax(alphas.float(), dim=-1)
    if cell.any_subset:
        return [space.validate({t: cell.cell_from_edge_codes(codes, label=f"{space.name}.{t}")
                                for t, codes in zip(space.cell_types, individual)})
                for individual in probs.argmax(-1).tolist()]
    op_probs = probs[..., 1:]  # `none` (column 0) is never an op of these spaces: the best of the others
    ops = op_probs.argmax(-1)
    strengths = op_probs.gather(-1, ops.unsqueeze(-1)).squeeze(-1).tolist()
    ops = ops.tolist()
    out = []
    for strength_p, ops_p in zip(strengths, ops):
        arch = {}
        for t, strength, op in zip(space.cell_types, strength_p, ops_p):
            nodes = []
            for node in cell.node_ids:
                first = cell.edge_id(node, 0)
                preds = sorted(range(node), key=lambda p: -strength[first + p])[: cell.inputs_per_node]
                nodes.append(tuple((p, op[first + p]) for p in preds))
            arch[t] = tuple(nodes)
        out.append(space.validate(arch))
    return out


def tournament(fitness: torch.Tensor, size: int, generator: torch.Generator) -> int:
    """ga.py tournament_selection: `size` distinct individuals drawn uniformly, the fittest wins (ties: the one
    drawn first)."""
    drawn = torch.randperm(len(fitness), generator=generator)[:size]
    return int(drawn[int(fitness[drawn].argmax())])


def uniform_crossover(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """ga.py crossover_chromosomes: each edge row (of each cell type) from `a` or `b` with probability 1/2.
    a, b: [cell types, n_edges, n_ops]."""
    from_a = torch.rand(a.shape[:-1], generator=generator) >= 0.5
    return torch.where(from_a.unsqueeze(-1), a, b)


def mutate(individual: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """ga.py mutate_chromosome: each edge row replaced by a fresh U[0, 1) row with probability `rate`."""
    hit = torch.rand(individual.shape[:-1], generator=generator) < rate
    fresh = torch.rand(individual.shape, generator=generator)
    return torch.where(hit.unsqueeze(-1), fresh, individual)


def rank(fitness: torch.Tensor) -> torch.Tensor:
    """Indices best first (population.py pop_sort: a stable sort, so ties keep population order)."""
    return torch.sort(fitness, descending=True, stable=True).indices


def next_generation(alphas: torch.Tensor, fitness: torch.Tensor, settings: EvNASConfig,
                    generator: torch.Generator) -> torch.Tensor:
    """ga.py evolve on a population SORTED best first: the elites unchanged, then children of two tournament
    winners, crossed over (with probability crossover_rate) and mutated."""
    children = [alphas[i] for i in range(settings.elites)]
    while len(children) < len(alphas):
        a = alphas[tournament(fitness, settings.tournament_size, generator)]
        b = alphas[tournament(fitness, settings.tournament_size, generator)]
        cross = float(torch.rand((), generator=generator)) < settings.crossover_rate
        child = uniform_crossover(a, b, generator) if cross else a.clone()
        children.append(mutate(child, settings.mutation_rate, generator))
    return torch.stack(children)


def diversity(space: SearchSpace, archs: list[Architecture]) -> float:
    """Mean over pairs of individuals of the share of decisions in which they differ: per cell type and node,
    its input combination and each of its (input, op) edges (planted_reward's decisions); any-subset cells: the
    code of each edge of the full DAG (absent or which op; planted_reward's decisions there). 0 for a population
    of clones, about 0.8 for uniform CNN architectures and 0.8 for uniform NB201 cells."""
    if len(archs) < 2:
        return 0.0
    cell = space.cell
    n = len(archs)
    if cell.any_subset:
        codes = torch.tensor([[cell.edge_codes(a[t]) for t in space.cell_types] for a in archs])  # [P, T, E]
        differ = (codes[:, None] != codes[None]).double().mean((-1, -2))
        return float(differ.sum() / (n * (n - 1)))
    n_ops = len(cell.ops)
    combos = torch.tensor([[cell.choices_of(a[t])[0] for t in space.cell_types] for a in archs])  # [P, T, N]
    pairs = torch.tensor([[[[p * n_ops + o for p, o in node] for node in a[t]] for t in space.cell_types]
                          for a in archs])  # [P, T, N, k]
    same_combo = (combos[:, None] == combos[None]).sum((-1, -2))
    shared = (pairs[:, None, ..., :, None] == pairs[None, ..., None, :]).sum((-1, -2, -3, -4))
    total = combos[0].numel() * (1 + cell.inputs_per_node)
    differ = 1.0 - (same_combo + shared).double() / total
    return float(differ.sum() / (n * (n - 1)))


def _generator(seed: int, stream: int) -> torch.Generator:
    """Stream 0 initialises the population; stream g + 1 breeds generation g + 1 from generation g."""
    return seeded_generator(seed, "evnas", stream)


class EvNASStrategy(Strategy):
    """A population of alpha matrices, one generation per search epoch (see the module docstring).

    State: `alphas` [P, cell types, n_edges, alpha_columns] (the population the next child phase trains),
    `fitness` [P] (NaN until scored), `scored` (how many of the current generation have their reward), `generation` (how
    many generations have been evaluated), and the last evaluated generation sorted best first (`last_alphas`,
    `last_fitness`): what final_architecture and derive_candidates answer with.
    """

    name = "evnas"
    distribution_kind = "population"
    distribution_title = "EvNAS population (choice frequencies)"
    answer_title = "the fittest of its population"
    signal_panels = ((("fitness_mean", "fitness_max", "best_fitness_so_far"), "EvNAS population: fitness", None),
                     (("diversity", "unique_share"), "EvNAS population: diversity, distinct share", "share"))

    def __init__(self, space: SearchSpace, settings: EvNASConfig, seed: int):
        super().__init__(space, settings, seed)
        check_settings(settings)
        self.seed = int(seed)
        self.alphas = random_alphas(settings.population_size, space, _generator(self.seed, 0))
        self.fitness = torch.full((settings.population_size,), math.nan, dtype=torch.float64)
        self.scored = 0
        self.generation = 0
        self.best_fitness = math.nan          # best fitness of any generation (measured under older weights)
        self.last_alphas: torch.Tensor | None = None
        self.last_fitness: torch.Tensor | None = None
        self.child_step = 0
        self.stats = self._empty_stats()
        self._refresh()

    # --- caches ------------------------------------------------------------------------------------------

    def _refresh(self) -> None:
        self.population = decode(self.space, self.alphas)
        self.last_population = None if self.last_alphas is None else decode(self.space, self.last_alphas)

    @staticmethod
    def _empty_stats() -> dict[str, float]:
        return dict.fromkeys(("fitness_mean", "fitness_max", "fitness_min", "diversity", "unique_share"), math.nan)

    # --- the epoch protocol ------------------------------------------------------------------------------

    def begin_epoch(self, epoch: int) -> None:
        self.child_step = 0
        self.stats = self._empty_stats()

    def train_architecture(self, generator: torch.Generator) -> Architecture:
        """train_search.py train(): individual (step % population_size) of the current generation."""
        arch = self.population[self.child_step % len(self.population)]
        self.child_step += 1
        return dict(arch)

    def rewards_wanted(self, epoch: int, policy_batches: int) -> int:
        """The individuals of the current generation not scored yet: the whole population every epoch (elites
        are re-scored under the new shared weights, as the authors' validation() does). One validation batch per
        individual, where the authors average top-1 over the whole validation split (25k images, batch 1024)."""
        return len(self.population) - self.scored

    def propose(self, generator: torch.Generator, limit: int) -> list[Architecture]:
        """The next unscored individuals in population order, at most `limit`."""
        if limit < 1:
            raise ValueError(f"propose: limit must be at least 1, got {limit}")
        end = min(self.scored + limit, len(self.population))
        if self.scored == end:
            raise RuntimeError("evnas: every individual of the generation is scored; nothing to propose")
        return [dict(a) for a in self.population[self.scored:end]]

    def observe(self, archs: list[Architecture], rewards: list[float]) -> None:
        """Records the fitness of the individuals of the last propose (in order); once the whole generation is
        scored, forms the next one."""
        check_rewards(archs, rewards)
        expected = self.population[self.scored:self.scored + len(archs)]
        if len(expected) != len(archs) or any(self.space.validate(a) != e for a, e in zip(archs, expected)):
            raise ValueError("evnas: observe() got architectures other than the next individuals proposed")
        for reward in rewards:
            self.fitness[self.scored] = float(reward)
            self.scored += 1
        if self.scored == len(self.population):
            self._evolve()

    def _evolve(self) -> None:
        order = rank(self.fitness)
        alphas, fitness = self.alphas[order], self.fitness[order]
        population = [self.population[i] for i in order.tolist()]
        keys = {self.space.arch_key(a) for a in population}
        self.stats = {"fitness_mean": float(fitness.mean()), "fitness_max": float(fitness[0]),
                      "fitness_min": float(fitness[-1]), "diversity": diversity(self.space, population),
                      "unique_share": len(keys) / len(population)}
        self.best_fitness = float(fitness[0]) if math.isnan(self.best_fitness) else max(self.best_fitness,
                                                                                       float(fitness[0]))
        self.last_alphas, self.last_fitness = alphas, fitness
        self.generation += 1
        self.alphas = next_generation(alphas, fitness, self.settings, _generator(self.seed, self.generation))
        self.fitness = torch.full_like(self.fitness, math.nan)
        self.scored = 0
        self._refresh()

    def epoch_statistics(self) -> dict[str, float]:
        """Of the generation evaluated this epoch (NaN when none completed): fitness mean / max / min, diversity
        (mean pairwise share of differing decisions), unique_share (distinct architectures / population); and
        best_fitness_so_far over all generations, generation (how many have been evaluated)."""
        return {**self.stats, "best_fitness_so_far": self.best_fitness, "generation": float(self.generation)}

    # --- what it found -----------------------------------------------------------------------------------

    def probabilities(self) -> dict[str, np.ndarray]:
        """Choice frequencies of the population the strategy holds (the one the next child phase trains)."""
        return choice_frequencies(self.space, self.population)

    def ranked_population(self) -> list[tuple[Architecture, float]]:
        """The last evaluated generation best first with its fitness (stable: ties keep population order, in
        which the previous generation's elites come first); before any evaluation, the current population in
        order with NaN fitness."""
        if self.last_population is None:
            return [(a, math.nan) for a in self.population]
        return list(zip(self.last_population, self.last_fitness.tolist()))

    def final_architecture(self) -> Architecture:
        """The fittest individual of the last evaluated generation (train_search.py: population[0] after
        pop_sort). All its members were scored under the same shared weights, so no fitness is stale."""
        return dict(self.ranked_population()[0][0])

    def derive_candidates(self, generator: torch.Generator, samples: int) -> list[Architecture]:
        """The last evaluated generation's distinct architectures, best fitness first, at most `samples`."""
        out, seen = [], set()
        for arch, _ in self.ranked_population():
            key = self.space.arch_key(arch)
            if key not in seen:
                seen.add(key)
                out.append(dict(arch))
        return out[:samples]

    # --- resume ------------------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        return {"seed": self.seed, "alphas": self.alphas.clone(), "fitness": self.fitness.clone(),
                "scored": self.scored, "generation": self.generation, "best_fitness": self.best_fitness,
                "child_step": self.child_step,
                "last_alphas": None if self.last_alphas is None else self.last_alphas.clone(),
                "last_fitness": None if self.last_fitness is None else self.last_fitness.clone()}

    def load_state_dict(self, state: dict) -> None:
        if tuple(state["alphas"].shape) != tuple(self.alphas.shape):
            raise ValueError(f"evnas: checkpoint population {tuple(state['alphas'].shape)} does not match "
                             f"{tuple(self.alphas.shape)} (population_size or search space changed, or the "
                             "checkpoint predates the CNN and RNN alphas' `none` column: restart the search)")
        self.seed = int(state["seed"])
        self.alphas = state["alphas"].clone()
        self.fitness = state["fitness"].clone()
        self.scored = int(state["scored"])
        self.generation = int(state["generation"])
        self.best_fitness = float(state["best_fitness"])
        self.child_step = int(state["child_step"])
        self.last_alphas = None if state["last_alphas"] is None else state["last_alphas"].clone()
        self.last_fitness = None if state["last_fitness"] is None else state["last_fitness"].clone()
        self._refresh()
