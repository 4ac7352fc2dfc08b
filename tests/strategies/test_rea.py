"""Regularized evolution (ednas_core/strategies/rea.py): NB201's settings, the mutation (exactly one edge on an
any-subset cell; one input or one op on a fixed-input cell), the ageing population (the oldest dies, not the
worst; the best ever is kept as the answer), the tournament, the rest of the Strategy interface, exact resume
through the real search loop, and that it finds a planted architecture far better than random search with the
same number of rewards."""

import math

import numpy as np
import pytest
import torch

from ednas_core.checkpoint import decode_state, encode_state
from ednas_core.config import from_mapping
from ednas_core.knobs import ConfigError
from ednas_core.spaces import CNN_SPACE, NB201_SPACE, RNN_SPACE
from ednas_core.strategies.base import choice_frequencies, uniform_architecture
from ednas_core.strategies.random import RandomSettings, RandomStrategy
from ednas_core.strategies.rea import REAConfig, REAStrategy, mutate
from helpers import Recorder, StopAfter
from synthetic_search import planted_architecture, planted_reward, synthetic_search

STAT_KEYS = {"fitness_mean", "fitness_max", "fitness_min", "best_fitness_so_far", "unique_share", "mutants", "scored"}


def _strategy(space=NB201_SPACE, population_size=10, sample_size=3, seed=0):
    return REAStrategy(space, REAConfig(population_size=population_size, sample_size=sample_size), seed)


def _feed(strategy, rewards, generator):
    """Propose / observe one architecture at a time with the given rewards; returns the archs scored."""
    scored = []
    for r in rewards:
        (arch,) = strategy.propose(generator, 1)
        strategy.observe([arch], [r])
        scored.append(arch)
    return scored


def _decisions(space, arch):
    """Per cell type and node: the set of (pred, op) edges (any-subset: the edge codes)."""
    return {t: [frozenset(pairs) for pairs in arch[t]] for t in space.cell_types}


# --- settings ---------------------------------------------------------------------------------------------------


def test_defaults_are_nb201s_rea_arguments():
    c = REAConfig()
    assert (c.population_size, c.sample_size) == (10, 3)  # REA.py --ea_population 10 --ea_sample_size 3
    assert from_mapping(REAConfig, {}, prefix="search.rea.", strict=False) == c


@pytest.mark.parametrize("key, value", [("population_size", 0), ("sample_size", 0), ("sample_size", 2.5),
                                        ("population", 10)])
def test_bad_setting_is_one_line_naming_the_key(key, value):
    with pytest.raises(ConfigError) as err:
        from_mapping(REAConfig, {key: value}, prefix="nb201.search.rea.", strict=False)
    assert f"nb201.search.rea.{key}" in str(err.value) and "\n" not in str(err.value)


def test_settings_come_from_the_rea_section():
    class Section:
        rea = REAConfig(population_size=4)

    assert REAStrategy.settings_from(Section()) == REAConfig(population_size=4)
    with pytest.raises(ConfigError, match="has no `rea` section"):
        REAStrategy.settings_from(object())


# --- mutation -------------------------------------------------------------------------------------------------


def test_mutation_changes_exactly_one_edge_of_an_nb201_cell():
    cell = NB201_SPACE.cell
    g = torch.Generator().manual_seed(0)
    edges, codes = np.zeros(cell.n_edges, int), np.zeros(len(cell.ops) + 1, int)
    for _ in range(3000):
        parent = uniform_architecture(NB201_SPACE, g)
        child = mutate(NB201_SPACE, parent, g)
        NB201_SPACE.validate(child)
        before, after = np.array(cell.edge_codes(parent["cell"])), np.array(cell.edge_codes(child["cell"]))
        (changed,) = np.nonzero(before != after)
        assert len(changed) == 1
        edges[changed[0]] += 1
        codes[after[changed[0]]] += 1
    assert edges.min() > 3000 / cell.n_edges * 0.8  # every edge, about uniformly
    assert codes.min() > 3000 / len(codes) * 0.8    # every code, `none` (absent) included


@pytest.mark.parametrize("space", [CNN_SPACE, RNN_SPACE])
def test_mutation_of_a_fixed_input_cell_changes_one_input_or_one_op(space):
    g = torch.Generator().manual_seed(1)
    kinds = {"input": 0, "op": 0}
    for _ in range(500):
        parent = uniform_architecture(space, g)
        child = space.validate(mutate(space, parent, g))
        changed = [(t, k) for t in space.cell_types for k in range(space.cell.n_nodes)
                   if _decisions(space, parent)[t][k] != _decisions(space, child)[t][k]]
        assert len(changed) == 1  # one node of one cell type
        t, k = changed[0]
        old, new = set(parent[t][k]), set(child[t][k])
        (gone,), (came,) = old - new, new - old  # exactly one edge replaced
        if gone[0] == came[0]:
            kinds["op"] += 1
            assert gone[1] != came[1]
        else:
            kinds["input"] += 1
            assert gone[1] == came[1] and came[0] not in {p for p, _ in parent[t][k]}  # the edge keeps its op
    assert min(kinds.values()) > 150  # both kinds, about half each


def test_mutation_leaves_the_parent_unchanged():
    g = torch.Generator().manual_seed(2)
    parent = uniform_architecture(NB201_SPACE, g)
    copy = {t: tuple(parent[t]) for t in parent}
    mutate(NB201_SPACE, parent, g)
    assert parent == copy


# --- the ageing population ------------------------------------------------------------------------------------


def test_initial_population_is_random_then_one_mutant_per_proposal():
    s = _strategy(population_size=10)
    g = torch.Generator().manual_seed(0)
    first = s.propose(g, 4)
    assert len(first) == 4
    s.observe(first, [0.1] * 4)
    rest = s.propose(g, 100)
    assert len(rest) == 6  # the rest of the initial population, no more
    s.observe(rest, [0.2] * 6)
    for _ in range(5):
        archs = s.propose(g, 100)
        assert len(archs) == 1
        s.observe(archs, [0.3])
    assert s.epoch_statistics()["mutants"] == 5


def test_the_oldest_dies_not_the_worst_and_the_best_ever_is_kept():
    s = _strategy(population_size=5, sample_size=2)
    g = torch.Generator().manual_seed(0)
    rewards = [0.9, 0.1, 0.2, 0.3, 0.4] + [0.05 * k for k in range(1, 8)]  # the first is the best of all
    scored = _feed(s, rewards, g)
    assert [a for a, _ in s.population] == scored[-5:]  # the last five, in age order
    assert [f for _, f in s.population] == rewards[-5:]
    assert s.final_architecture() == scored[0]  # aged out, still the answer
    assert s.epoch_statistics()["best_fitness_so_far"] == 0.9


def test_the_parent_is_the_fittest_of_the_sample():
    s = _strategy(population_size=6, sample_size=60)  # 60 draws: the fittest member is drawn (1 - (5/6)^60)
    g = torch.Generator().manual_seed(0)
    scored = _feed(s, [0.1, 0.2, 0.8, 0.3, 0.2, 0.1], g)
    for _ in range(20):
        child = s.propose(g, 1)[0]
        diff = np.array(NB201_SPACE.cell.edge_codes(child["cell"])) != np.array(
            NB201_SPACE.cell.edge_codes(scored[2]["cell"]))
        assert diff.sum() == 1  # a mutant of the fittest (not observed: the population stays)


def test_sample_size_one_picks_parents_uniformly():
    s = _strategy(population_size=4, sample_size=1)
    g = torch.Generator().manual_seed(0)
    scored = _feed(s, [0.4, 0.3, 0.2, 0.1], g)
    codes = [np.array(NB201_SPACE.cell.edge_codes(a["cell"])) for a in scored]
    parents = np.zeros(4, int)
    for _ in range(400):
        child = np.array(NB201_SPACE.cell.edge_codes(s.propose(g, 1)[0]["cell"]))
        near = [k for k in range(4) if (codes[k] != child).sum() == 1]
        parents[near[0]] += 1 if len(near) == 1 else 0
    assert parents.min() > 50


def test_equal_fitness_keeps_the_first_drawn():
    s = _strategy(population_size=3, sample_size=3)
    g = torch.Generator().manual_seed(5)
    _feed(s, [0.5, 0.5, 0.5], g)
    draw = torch.Generator().manual_seed(9)
    first = int(torch.randint(3, (1,), generator=torch.Generator().manual_seed(9)))
    child = s.propose(draw, 1)[0]
    parent = s.population[first][0]
    assert (np.array(NB201_SPACE.cell.edge_codes(child["cell"])) != np.array(
        NB201_SPACE.cell.edge_codes(parent["cell"]))).sum() == 1


# --- the rest of the interface ----------------------------------------------------------------------------------


def test_train_architecture_is_a_population_member_or_uniform_before_any_score():
    s = _strategy(population_size=4)
    g = torch.Generator().manual_seed(0)
    NB201_SPACE.validate(s.train_architecture(g))
    scored = _feed(s, [0.1, 0.2, 0.3, 0.4], g)
    keys = {NB201_SPACE.arch_key(a) for a in scored}
    drawn = [NB201_SPACE.arch_key(s.train_architecture(g)) for _ in range(200)]
    assert set(drawn) == keys


def test_probabilities_derive_candidates_and_statistics():
    s = _strategy(population_size=4)
    g = torch.Generator().manual_seed(0)
    assert all(math.isnan(v) for k, v in s.epoch_statistics().items() if k not in ("mutants", "scored"))
    scored = _feed(s, [0.3, 0.9, 0.1, 0.5, 0.7], g)  # the first (0.3) ages out
    probs = s.probabilities()
    expected = choice_frequencies(NB201_SPACE, scored[1:])
    assert probs.keys() == expected.keys() and all(np.array_equal(probs[k], expected[k]) for k in probs)
    assert s.derive_candidates(g, 10) == [scored[1], scored[4], scored[3], scored[2]]
    assert s.derive_candidates(g, 2) == [scored[1], scored[4]]
    stats = s.epoch_statistics()
    assert set(stats) == STAT_KEYS
    assert (stats["fitness_max"], stats["fitness_min"], stats["scored"]) == (0.9, 0.1, 5.0)
    assert stats["fitness_mean"] == pytest.approx(np.mean([0.9, 0.1, 0.5, 0.7]))
    assert math.isnan(s.log_prob(scored[1])) and s.distribution_kind == "population"


def test_final_architecture_before_any_score_is_a_fixed_draw():
    assert _strategy(seed=4).final_architecture() == _strategy(seed=4).final_architecture()


def test_rejects_non_finite_rewards():
    s = _strategy()
    g = torch.Generator().manual_seed(0)
    archs = s.propose(g, 2)
    with pytest.raises(FloatingPointError):
        s.observe(archs, [0.1, math.nan])
    with pytest.raises(ValueError):
        s.observe(archs, [0.1])


def test_state_survives_the_checkpoint_format():
    s = _strategy(population_size=4)
    g = torch.Generator().manual_seed(0)
    _feed(s, [0.3, 0.9, 0.1, 0.5, 0.7, 0.2], g)
    t = _strategy(population_size=4, seed=99)
    t.load_state_dict(decode_state(encode_state(s.state_dict())))
    assert t.population == s.population and t.best == s.best and t.epoch_statistics() == s.epoch_statistics()
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert _feed(s, [0.4, 0.6], g1) == _feed(t, [0.4, 0.6], g2)


# --- through the search loop ----------------------------------------------------------------------------------


@pytest.mark.parametrize("space", [CNN_SPACE, NB201_SPACE])
def test_resumed_search_equals_uninterrupted(space, tmp_path):
    reward = planted_reward(space, planted_architecture(space))

    def run(**kwargs):
        search = synthetic_search(_strategy(space, population_size=8), reward, 5, child_steps=4,
                                  policy_batches=6, **kwargs)
        return search, search.run()

    whole, whole_result = run()
    with pytest.raises(StopAfter.Killed):
        run(checkpoint=tmp_path / "c.pt", callbacks=[StopAfter(2)])
    recorder = Recorder()
    resumed, resumed_result = run(checkpoint=tmp_path / "c.pt", callbacks=[recorder])
    assert recorder.resumed == [0, 1, 2]
    assert resumed_result.final_architecture == whole_result.final_architecture
    assert resumed.strategy.population == whole.strategy.population
    assert resumed.child.trained == whole.child.trained[-len(resumed.child.trained):]  # epochs 3 and 4
    assert [r.metrics["fitness_mean"] for r in resumed.history] == [r.metrics["fitness_mean"] for r in whole.history]


@pytest.mark.parametrize("space", [CNN_SPACE, NB201_SPACE])
def test_evolution_finds_the_planted_architecture_far_better_than_random(space):
    """600 rewards, population 20, sample 5. Over seeds 0-4: CNN (24 decisions, one changed per mutation) the
    best scored ends at 0.75-0.88 of the planted decisions, the best of 600 uniform draws at 0.42-0.46; NB201
    (6 edges, 5 codes each) REA finds the planted cell itself every time, random search 0.67-0.83 of it."""
    reward = planted_reward(space, planted_architecture(space))
    search = synthetic_search(_strategy(space, population_size=20, sample_size=5), reward, 30, child_steps=0,
                              policy_batches=20)
    result = search.run()
    assert len(search.child.scored) == 600
    control = synthetic_search(RandomStrategy(space, RandomSettings(baseline_decay=0.99), 0), reward, 30,
                               child_steps=0, policy_batches=20)
    control.run()
    best_random = max(reward(a) for a in control.child.scored)
    if space is NB201_SPACE:
        assert reward(result.final_architecture) == 1.0 and best_random < 1.0
    else:
        assert reward(result.final_architecture) >= 0.7 > best_random + 0.15
