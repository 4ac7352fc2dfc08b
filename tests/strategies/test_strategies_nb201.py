"""Every strategy on the NAS-Bench-201 cell space (any-subset cells: an edge may be `none`), through the real
search loop and one by one: every architecture it trains or scores is a valid NB201 cell, its probabilities
have the NB201 shapes, derive works, a killed search resumes exactly, and each strategy does on NB201 what its
reference does there (ENAS: one code per edge, `none` included; NAO: edge-code sequences; EvNAS: 5-column alpha
rows decoded by argmax; random: every cell equally likely; EDNAS: learns a planted cell)."""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
import pytest
import torch

from ednas_core.config import SearchConfig
from ednas_core.derive import derive
from ednas_core.genotypes import from_architecture, to_architecture
from ednas_core.spaces import NB201_SPACE, from_nb201_string, to_nb201_string
from ednas_core.strategies import make_strategy
from ednas_core.strategies.base import choice_frequencies, from_tokens, to_tokens, uniform_architecture
from ednas_core.strategies.enas import ENASController, nb201_defaults
from ednas_core.strategies.evnas import decode, diversity, mutate, random_alphas, uniform_crossover
from ednas_core.strategies.nao import TokenGrammar
from ednas_core.synthetic import planted_architecture, planted_reward
from helpers import Recorder, StopAfter
from synthetic_search import synthetic_search

SPACE = NB201_SPACE
CELL = SPACE.cell
NAMES = ["ednas", "enas", "evnas", "nao", "random"]  # the strategies this file covers (rea has its own tests)
SMALL = {
    "enas": dict(train_steps=3, num_aggregate=4, lstm_size=16),
    "evnas": dict(population_size=6, tournament_size=2),
    "nao": dict(update_every=1, seed_architectures=12, new_architectures=4, random_architectures=2, top_k=4,
                epochs=3, batch_size=6, emb_size=8, hidden_size=8, mlp_hidden_size=8, max_step_size=5),
}


def strategy(name: str, seed: int = 0, policy_lr: float = 0.05, **overrides):
    """Strategy `name` on NB201 with test-sized settings (`overrides`: more of its own section's keys)."""
    config = SearchConfig(policy_lr=policy_lr, strategy=name)
    section = {**SMALL.get(name, {}), **overrides}
    if section:
        config = dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **section)})
    return make_strategy(SPACE, config, seed)


def every_cell() -> list[dict]:
    """All 15,625 NB201 cells, from their edge codes."""
    return [{"cell": CELL.cell_from_edge_codes(codes)} for codes in itertools.product(range(5), repeat=6)]


def assert_nb201(arch) -> None:
    """A valid NB201 cell in canonical form that survives the benchmark's architecture string both ways."""
    assert SPACE.validate(arch) == arch
    assert from_nb201_string(to_nb201_string(arch)) == arch


def assert_nb201_probabilities(probs: dict[str, np.ndarray]) -> None:
    assert set(probs) == {"cell_node", "cell_edge"}
    node, edge = probs["cell_node"], probs["cell_edge"]
    assert node.shape == (3, 8) and edge.shape == (6, 4)
    np.testing.assert_allclose(edge.sum(1), 1.0, atol=1e-6)
    for k, combos in enumerate(CELL.combos):  # node 1: 2 subsets, node 2: 4, node 3: 8; the padding is 0
        assert len(combos) == 2 ** (k + 1)
        assert node[k, : len(combos)].sum() == pytest.approx(1.0, abs=1e-6)
        assert not node[k, len(combos):].any()
    assert (node >= 0).all() and (edge >= 0).all()


def edge_count(archs) -> np.ndarray:
    """[n_edges, n_ops] how often each (edge, op) is used by `archs` (the search loop's counts)."""
    counts = np.zeros((CELL.n_edges, len(CELL.ops)), np.int64)
    for arch in archs:
        for code, k in zip(CELL.edge_codes(arch["cell"]), range(CELL.n_edges)):
            if code:
                counts[k, code - 1] += 1
    return counts


# --- every strategy through the real loop -------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_every_architecture_is_an_nb201_cell_through_the_real_loop(name):
    s = strategy(name)
    rec = Recorder()
    search = synthetic_search(s, planted_reward(SPACE, planted_architecture(SPACE)), epochs=3, child_steps=7,
                              policy_batches=5, callbacks=[rec])
    result = search.run()
    child = search.child
    assert len(child.trained) == 21 and len(child.scored) > 0
    for arch in child.trained + child.scored:
        assert_nb201(arch)
    keys = [set(r.metrics) for r in rec.reports]
    assert keys[0] == keys[1] == keys[2]
    for report in rec.reports:
        assert_nb201_probabilities(report.probabilities)
    # the loop's counts are the ops of the present edges of every trained and scored architecture
    assert sum(r.counts["cell"] for r in rec.reports).tolist() == edge_count(child.trained + child.scored).tolist()
    assert_nb201(result.final_architecture)
    assert_nb201_probabilities(s.probabilities())
    candidates = s.derive_candidates(torch.Generator().manual_seed(1), 10)
    assert 1 <= len(candidates) <= 10
    for arch in candidates:
        assert_nb201(arch)


@pytest.mark.parametrize("name", NAMES)
def test_derive_writes_an_nb201_genotype_with_its_architecture_string(name):
    s = strategy(name)
    reward = planted_reward(SPACE, planted_architecture(SPACE))
    synthetic_search(s, reward, epochs=2, child_steps=5, policy_batches=4).run()
    result = derive(s, reward, samples=10, generator=torch.Generator().manual_seed(3))
    genotype = result.chosen.genotype
    assert genotype.space == "nb201" and len(genotype.cells["cell"]) == CELL.n_edges
    arch = to_architecture(genotype)
    assert reward(arch) == result.best.reward
    assert genotype.to_dict()["arch_string"] == to_nb201_string(arch)
    assert from_architecture(SPACE, result.best.architecture) == genotype


def _state_equal(a, b) -> bool:
    """Nested state_dicts equal: tensors exactly, floats with NaN == NaN."""
    if isinstance(a, torch.Tensor):
        if not (isinstance(b, torch.Tensor) and a.shape == b.shape and a.dtype == b.dtype):
            return False
        if a.is_floating_point():  # NaN where the other has NaN (EvNAS: fitness not measured yet)
            return torch.equal(a.isnan(), b.isnan()) and torch.equal(a[~a.isnan()], b[~b.isnan()])
        return torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_state_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(map(_state_equal, a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@pytest.mark.parametrize("name", NAMES)
def test_killed_and_resumed_search_equals_uninterrupted(tmp_path, name):
    reward = planted_reward(SPACE, planted_architecture(SPACE))

    def run(file, callbacks=()):
        search = synthetic_search(strategy(name, seed=3), reward, 4, child_steps=5, policy_batches=4, noise=0.05,
                                  seed=2, checkpoint=tmp_path / file, callbacks=callbacks)
        return search, search.run()

    full, result = run("full.pt")
    with pytest.raises(StopAfter.Killed):
        run("killed.pt", [StopAfter(1)])
    rec = Recorder()
    resumed, resumed_result = run("killed.pt", [rec])
    assert rec.resumed == [0, 1] and [r.epoch for r in rec.reports] == [2, 3]
    # the resumed run trains and scores exactly the architectures the uninterrupted one did in epochs 3 and 4
    assert full.child.trained[-len(resumed.child.trained):] == resumed.child.trained
    before = resumed.child.scored.count(None)  # a resumed SyntheticChild only restores how many it scored
    assert before > 0 and None not in resumed.child.scored[before:]
    assert full.child.scored[before:] == resumed.child.scored[before:]
    assert _state_equal(full.strategy.state_dict(), resumed.strategy.state_dict())
    assert result.final_architecture == resumed_result.final_architecture
    for ra, rb in zip(full.history, resumed.history):
        ma = {k: v for k, v in ra.metrics.items() if not k.endswith(("_time_s", "_per_s"))}
        mb = {k: v for k, v in rb.metrics.items() if not k.endswith(("_time_s", "_per_s"))}
        assert _state_equal(ma, mb)
        assert np.array_equal(ra.counts["cell"], rb.counts["cell"])
        for key in ra.probabilities:
            assert np.array_equal(ra.probabilities[key], rb.probabilities[key])


# --- the shared helpers on any-subset cells -----------------------------------------------------------------


def test_uniform_architecture_draws_each_edge_code_with_probability_one_fifth():
    g = torch.Generator().manual_seed(0)
    codes = np.array([CELL.edge_codes(uniform_architecture(SPACE, g)["cell"]) for _ in range(20_000)])
    freq = np.stack([(codes == c).mean(0) for c in range(5)])  # [code, edge]
    np.testing.assert_allclose(freq, 0.2, atol=0.015)  # 4.5 standard errors (0.0028)
    # edges independent: the empty cell (all six `none`) is as rare as any other cell, not 1/64
    assert (codes == 0).all(1).mean() < 0.002


def test_tokens_are_the_edge_codes_and_round_trip():
    archs = every_cell()
    for arch in archs[::97]:
        tokens = to_tokens(SPACE, arch)
        assert tokens == list(CELL.edge_codes(arch["cell"]))
        assert from_tokens(SPACE, tokens) == arch
    with pytest.raises(ValueError, match="expected 6 tokens"):
        from_tokens(SPACE, [1, 2, 3])
    with pytest.raises(ValueError):
        from_tokens(SPACE, [5, 0, 0, 0, 0, 0])  # code 5: no such op


def test_choice_frequencies_count_subsets_including_the_empty_one():
    empty = {"cell": CELL.cell_from_edge_codes([0] * 6)}
    full = {"cell": CELL.cell_from_edge_codes([1, 2, 3, 4, 1, 2])}
    probs = choice_frequencies(SPACE, [empty, full, full, full])
    assert_nb201_probabilities(probs)
    np.testing.assert_allclose(probs["cell_node"][:, 0], 0.25)        # () once in four
    np.testing.assert_allclose(probs["cell_node"][2, 7], 0.75)        # (0,1,2) three times
    assert probs["cell_edge"][0].tolist() == [1.0, 0.0, 0.0, 0.0]     # 0->1: skip_connect whenever present


# --- random search: every cell equally likely -----------------------------------------------------------------


def test_random_search_makes_every_nb201_cell_equally_likely():
    s = strategy("random")
    expected = -6 * math.log(5)
    for arch in every_cell()[::131]:
        assert s.log_prob(arch) == pytest.approx(expected, abs=1e-5)
    probs = s.probabilities()
    assert_nb201_probabilities(probs)
    for k, combos in enumerate(CELL.combos):  # each edge present with probability 4/5, independently
        i = k + 1
        for j, c in enumerate(combos):
            assert probs["cell_node"][k, j] == pytest.approx(0.8 ** len(c) * 0.2 ** (i - len(c)), abs=1e-6)
    np.testing.assert_allclose(probs["cell_edge"], 0.25, atol=1e-7)
    g = torch.Generator().manual_seed(1)
    codes = np.array([CELL.edge_codes(s.train_architecture(g)["cell"]) for _ in range(10_000)])
    for c in range(5):
        assert (codes == c).mean() == pytest.approx(0.2, abs=0.01)


# --- EDNAS -------------------------------------------------------------------------------------------------------


def test_ednas_is_a_distribution_over_the_15625_cells():
    """Structure (a subset per node) and ops of the selected edges: every cell once, probabilities summing to 1,
    and the edges a cell leaves out contribute no op term (the empty cell's probability is its subsets')."""
    s = strategy("ednas", seed=4)
    with torch.no_grad():
        for p in s.vectors.parameters():
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    total = sum(math.exp(s.log_prob(a)) for a in every_cell())
    assert total == pytest.approx(1.0, abs=1e-5)
    empty = {"cell": CELL.cell_from_edge_codes([0] * 6)}
    node = s.probabilities()["cell_node"]
    assert math.exp(s.log_prob(empty)) == pytest.approx(node[0, 0] * node[1, 0] * node[2, 0], rel=1e-5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_ednas_learns_a_planted_nb201_cell(seed):
    planted = planted_architecture(SPACE, seed=seed)
    reward = planted_reward(SPACE, planted)
    assert reward(planted) == 1.0 and max(reward(a) for a in every_cell() if a != planted) == pytest.approx(5 / 6)
    s = strategy("ednas", seed=seed)
    history = synthetic_search(s, reward, epochs=15, child_steps=2, policy_batches=20).run().history
    assert s.final_architecture() == planted  # 300 rewards of a 15,625-cell space
    assert history[0].metrics["reward"] < 0.4 < 0.8 < history[-1].metrics["reward"]


def test_random_search_with_the_same_budget_does_not_find_it():
    planted = planted_architecture(SPACE, seed=0)
    reward = planted_reward(SPACE, planted)
    search = synthetic_search(strategy("random"), reward, epochs=15, child_steps=2, policy_batches=20)
    history = search.run().history
    assert all(0.1 < h.metrics["reward"] < 0.35 for h in history)  # uniform cells: 1/5 of the edges right
    assert max(map(reward, search.child.scored)) < 1.0


# --- ENAS ---------------------------------------------------------------------------------------------------------


def test_enas_samples_one_code_per_edge_none_included():
    s = strategy("enas", seed=0)
    assert not hasattr(s.controller, "w_attn_1")  # no input decisions on an any-subset cell
    assert s.controller.w_soft.shape == (16, 5) and s.controller.w_emb.shape == (5, 16)
    g = torch.Generator().manual_seed(0)
    archs = [s.train_architecture(g) for _ in range(2_000)]
    codes = np.array([CELL.edge_codes(a["cell"]) for a in archs])
    # near-uniform at initialisation: `none` (code 0) about a fifth of the time on every edge
    np.testing.assert_allclose((codes == 0).mean(0), 0.2, atol=0.04)
    assert (codes == 0).any(1).mean() > 0.6  # most samples leave some edge out (uniform: 1 - 0.8^6 = 0.74)
    assert len({tuple(c) for c in codes.tolist()}) > 1_500


def test_enas_log_prob_is_a_distribution_over_the_cells_and_matches_its_samples():
    """A skewed controller (wide initialisation): its log P over all 15,625 cells sums to 1, and the edge-code
    marginals of 20,000 samples match the marginals of exp(log P)."""
    settings = dataclasses.replace(nb201_defaults(), lstm_size=16, init_range=1.0, temperature=1.0)
    controller = ENASController(SPACE, settings, torch.Generator().manual_seed(2))
    cells = every_cell()
    sequences = torch.tensor([list(CELL.edge_codes(a["cell"])) for a in cells])
    with torch.no_grad():
        _, log_prob, _ = controller.run(len(sequences), forced=sequences)
        drawn, drawn_lp, _ = controller.run(20_000, generator=torch.Generator().manual_seed(3))
        _, forced_lp, _ = controller.run(20_000, forced=drawn)
    p = log_prob.double().exp()
    assert float(p.sum()) == pytest.approx(1.0, abs=1e-4)
    assert torch.allclose(drawn_lp, forced_lp, atol=1e-5)  # sampling and scoring agree
    exact = torch.stack([torch.stack([(p * (sequences[:, e] == c)).sum() for c in range(5)]) for e in range(6)])
    empirical = torch.stack([torch.stack([(drawn[:, e] == c).double().mean() for c in range(5)]) for e in range(6)])
    assert float((exact - empirical).abs().max()) < 0.02
    assert float(exact.max()) > 0.3  # skewed, so the check means something


def test_enas_log_prob_and_entropy_of_the_strategy():
    s = strategy("enas", seed=1)
    cells = every_cell()[::250]
    for arch in cells:
        seq = torch.tensor([list(CELL.edge_codes(arch["cell"]))])
        with torch.no_grad():
            _, lp, ent = s.controller.run(1, forced=seq)
        assert s.log_prob(arch) == pytest.approx(float(lp), abs=1e-6)
        # near-uniform logits (init_range 0.1, tanh_constant 1.1 / 2.5): the summed entropy is about 6 log 5
        assert float(ent) == pytest.approx(6 * math.log(5), abs=0.05)


def test_enas_nb201_defaults_are_the_benchmarks_baseline():
    d = nb201_defaults()
    assert (d.lstm_size, d.lstm_num_layers, d.temperature, d.tanh_constant, d.op_tanh_reduce) == (32, 2, 5.0, 2.5, 1.0)
    assert (d.lr, d.adam_beta1, d.adam_eps, d.train_steps, d.num_aggregate) == (1e-3, 0.0, 1e-3, 50, 20)
    s = make_strategy(SPACE, dataclasses.replace(SearchConfig(strategy="enas"), enas=d), 0)
    assert_nb201(s.sample(torch.Generator().manual_seed(0)))


# --- NAO -----------------------------------------------------------------------------------------------------------


def test_nao_grammar_is_the_edge_codes_and_decoding_is_always_valid():
    grammar = TokenGrammar(SPACE)
    assert (grammar.length, grammar.vocab, grammar.step_tokens) == (6, 6, 1)
    archs = every_cell()[::500]
    tokens = [to_tokens(SPACE, a) for a in archs]
    ids = grammar.to_ids(tokens)
    assert ids.min() >= 1 and ids.max() <= 5
    assert [list(t) for t in grammar.to_tokens(ids)] == tokens
    assert grammar.mask(3, None).tolist() == [False] + [True] * 5  # every code anywhere, never SOS
    s = strategy("nao", seed=0)
    g = torch.Generator().manual_seed(0)
    outputs = torch.nn.functional.normalize(torch.randn(200, 6, 8, generator=g), dim=-1)
    for arch in s.decode(outputs, s.epd.embed(outputs)):
        assert_nb201(arch)
    for arch in s.reconstruct(archs):
        assert_nb201(arch)


# --- EvNAS ---------------------------------------------------------------------------------------------------------


def test_evnas_individuals_are_five_column_alphas_decoded_by_argmax_per_edge():
    alphas = random_alphas(4, SPACE, torch.Generator().manual_seed(0))
    assert alphas.shape == (4, 1, 6, 5)  # NB201: none + 4 ops per edge row (TinyNetwork.arch_parameters)
    for individual, arch in zip(alphas, decode(SPACE, alphas)):
        assert CELL.edge_codes(arch["cell"]) == tuple(individual[0].argmax(-1).tolist())
        assert_nb201(arch)
    hand = torch.zeros(1, 1, 6, 5)
    hand[0, 0, torch.arange(6), torch.tensor([0, 3, 0, 1, 0, 4])] = 1.0
    assert to_nb201_string(decode(SPACE, hand)[0]) == \
        "|none~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"
    g = torch.Generator().manual_seed(1)
    child = mutate(uniform_crossover(alphas[0], alphas[1], g), 0.5, g)
    assert child.shape == (1, 6, 5)
    assert_nb201(decode(SPACE, child[None])[0])


def test_evnas_diversity_on_nb201_cells():
    arch = uniform_architecture(SPACE, torch.Generator().manual_seed(0))
    assert diversity(SPACE, [arch] * 5) == 0.0
    g = torch.Generator().manual_seed(1)
    assert diversity(SPACE, [uniform_architecture(SPACE, g) for _ in range(60)]) == pytest.approx(0.8, abs=0.04)
    a = {"cell": CELL.cell_from_edge_codes([0, 0, 0, 0, 0, 0])}
    b = {"cell": CELL.cell_from_edge_codes([0, 0, 0, 1, 2, 3])}
    assert diversity(SPACE, [a, b]) == pytest.approx(0.5)


def test_evnas_population_probabilities_and_resume_shape_check():
    s = strategy("evnas", seed=0)
    assert_nb201_probabilities(s.probabilities())
    other = make_strategy(SPACE, dataclasses.replace(SearchConfig(strategy="evnas"), evnas=dataclasses.replace(
        SearchConfig().evnas, population_size=6, tournament_size=2)), 5)
    other.load_state_dict(s.state_dict())
    assert other.population == s.population
