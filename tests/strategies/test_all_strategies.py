"""What every registered strategy owes the search loop, derive, tracking and the stages, checked the same way for
each (each strategy's own file tests its algorithm): the epoch protocol through the real loop on both spaces,
derive's candidates and written genotype, the checkpoint fingerprint, the params.yaml sections, and a tiny real
search -> derive -> train per strategy."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from ednas_core.child_cnn import cnn_search
from ednas_core.child_rnn import rnn_search
from ednas_core.config import DataConfig, Params, RNNSearchConfig, SearchConfig
from ednas_core.data.ptb import make_synthetic_corpus
from ednas_core.derive import derive
from ednas_core.epochs import fingerprint
from ednas_core.genotypes import from_architecture, to_architecture
from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.strategies import STRATEGIES, key_owners, make_strategy, strategy_settings
from ednas_core.train import GenotypeTrainer
from helpers import Recorder, cpu_runtime, make_pattern_dataset, tiny_eval_config, tiny_search_config
from synthetic_search import planted_architecture, planted_reward, synthetic_search

NAMES = sorted(STRATEGIES)
# Test sizes of every strategy's own settings (the defaults are the published, paper-sized ones).
SMALL = {
    "enas": dict(train_steps=3, num_aggregate=4, lstm_size=16),
    "evnas": dict(population_size=6, tournament_size=2),
    "nao": dict(update_every=1, seed_architectures=12, new_architectures=4, random_architectures=2, top_k=4,
                epochs=3, batch_size=6, emb_size=8, hidden_size=8, mlp_hidden_size=8, max_step_size=5),
}


def small(config, name: str):
    """`config` (a search section) running strategy `name` with its test-sized settings."""
    config = dataclasses.replace(config, strategy=name)
    if name in SMALL:
        config = dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **SMALL[name])})
    return config


def small_strategy(name: str, space, seed: int = 0):
    base = SearchConfig(policy_lr=0.01) if space is CNN_SPACE else RNNSearchConfig()
    return make_strategy(space, small(base, name), seed)


@pytest.mark.parametrize("space", [CNN_SPACE, RNN_SPACE], ids=["cnn", "rnn"])
@pytest.mark.parametrize("name", NAMES)
def test_epoch_protocol_through_the_real_loop(name, space):
    strategy = small_strategy(name, space)
    rec = Recorder()
    search = synthetic_search(strategy, planted_reward(space, planted_architecture(space)), epochs=3,
                              child_steps=7, policy_batches=5, callbacks=[rec])
    result = search.run()
    keys = [set(r.metrics) for r in rec.reports]
    assert keys[0] == keys[1] == keys[2]  # the same metrics every epoch (MLflow, CSV columns)
    assert {"reward", "reward_count", "baseline", "entropy", "child_time_s", "policy_time_s"} <= keys[0]
    assert sum(r.metrics["reward_count"] for r in rec.reports) == len(search.child.scored) > 0
    assert len(search.child.trained) == 3 * 7
    for report in rec.reports:
        for key, p in report.probabilities.items():
            cell = space.cell
            if key.endswith("_edge"):
                assert p.shape == (cell.n_edges, len(cell.ops))
                np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-6)
            else:
                assert p.shape == (cell.n_nodes, cell.max_combos)
                for k, combos in enumerate(cell.combos):
                    assert p[k, : len(combos)].sum() == pytest.approx(1.0, abs=1e-6)
                    assert not p[k, len(combos):].any()
        per_arch = cell.n_nodes * cell.inputs_per_node
        used = int(report.metrics["reward_count"]) + 7
        assert all(report.counts[t].sum() == per_arch * used for t in space.cell_types)
    assert space.validate(result.final_architecture) == result.final_architecture


@pytest.mark.parametrize("name", NAMES)
def test_propose_stays_within_the_limit(name):
    strategy = small_strategy(name, CNN_SPACE)
    reward = planted_reward(CNN_SPACE, planted_architecture(CNN_SPACE))
    g = torch.Generator().manual_seed(0)
    strategy.begin_epoch(0)
    for _ in range(7):
        strategy.train_architecture(g)
    wanted = strategy.rewards_wanted(0, 5)
    done = 0
    while done < wanted:
        archs = strategy.propose(g, 1)
        assert len(archs) == 1 and CNN_SPACE.validate(archs[0]) == archs[0]
        strategy.observe(archs, [reward(a) for a in archs])
        done += 1


@pytest.mark.parametrize("name", NAMES)
def test_derive_writes_the_candidate_with_the_best_reward(name):
    space = CNN_SPACE
    strategy = small_strategy(name, space)
    reward = planted_reward(space, planted_architecture(space))
    synthetic_search(strategy, reward, epochs=2, child_steps=5, policy_batches=4).run()
    result = derive(strategy, reward, samples=10, generator=torch.Generator().manual_seed(3))
    assert 1 <= len(result.candidates) <= 10
    assert result.best.reward == max(c.reward for c in result.candidates)
    # the written genotype is the best candidate's architecture: its reward, recomputed, is the best reward
    assert reward(to_architecture(result.chosen.genotype)) == result.best.reward
    assert from_architecture(space, result.best.architecture) == result.chosen.genotype
    assert result.argmax.architecture == strategy.final_architecture()
    assert result.ranked[0] is result.best


@pytest.mark.parametrize("name", NAMES)
def test_fingerprint_depends_only_on_the_chosen_strategys_section(name):
    config = small(SearchConfig(), name)
    others = [n for n in ("enas", "evnas", "nao") if n != name]
    changed_other = dataclasses.replace(config, **{others[0]: dataclasses.replace(
        getattr(config, others[0]), **{dataclasses.fields(getattr(config, others[0]))[0].name: 7})})
    assert fingerprint(search=strategy_settings(config)) == fingerprint(search=strategy_settings(changed_other))
    if name in SMALL:
        section = getattr(config, name)
        key = dataclasses.fields(section)[0].name
        mine = dataclasses.replace(config, **{name: dataclasses.replace(section, **{key: getattr(section, key) + 1})})
        assert fingerprint(search=strategy_settings(config)) != fingerprint(search=strategy_settings(mine))
    assert set(strategy_settings(config)) & {"enas", "evnas", "nao"} == ({name} & {"enas", "evnas", "nao"})


class _ReadRecorder:
    """A search section that records the names settings_from reads from it."""

    def __init__(self, section):
        self._section, self.read = section, []

    def __getattr__(self, name):
        self.read.append(name)
        return getattr(self._section, name)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("section", [SearchConfig(), RNNSearchConfig()], ids=["cnn", "rnn"])
def test_settings_from_reads_its_own_section_and_its_declared_search_keys_only(name, section):
    """search_keys says which keys of the search section proper a strategy reads (key_owners, and through it
    check-params' warning and the study's random-search control, rely on it): exactly what settings_from reads."""
    recorder = _ReadRecorder(section)
    STRATEGIES[name].settings_from(recorder)
    own = {name} & {f.name for f in dataclasses.fields(section)}  # its section (ednas and random have none)
    assert set(recorder.read) == own | set(STRATEGIES[name].search_keys)


def test_key_owners():
    assert key_owners("nao.epochs") == ("nao",) and key_owners("enas.lr") == ("enas",)
    assert key_owners("policy_lr") == ("ednas",) and key_owners("baseline_decay") == ("ednas", "random")
    assert key_owners("lr") == key_owners("strategy") == key_owners("epochs") == ()
    # the keys of the search section proper that strategies alone read: EDNAS's (random's baseline_decay among them)
    fields = {f.name for f in dataclasses.fields(SearchConfig())}
    assert {k for k in fields if key_owners(k)} == {"policy_lr", "policy_beta1", "policy_beta2", "policy_weight_decay",
                                                   "policy_init_std", "baseline_decay", "entropy_weight"}


def test_every_task_has_every_strategys_section_and_builds_it():
    params = Params()
    for task in ("cifar10", "digits", "ptb", "markov"):
        params.task = task
        search = params.task_config().search
        space = RNN_SPACE if task in ("ptb", "markov") else CNN_SPACE
        for name in NAMES:
            strategy = make_strategy(space, dataclasses.replace(search, strategy=name), seed=0)
            assert strategy.name == name and strategy.space is space


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tiny_search_derive_train_on_images(name, tmp_path):
    dataset = make_pattern_dataset(n_train=320, n_test=128, seed=3)
    runtime = cpu_runtime(seed=5)
    search = cnn_search(dataset, small(tiny_search_config(epochs=4), name), DataConfig(), runtime,
                        tmp_path / "search.pt")
    result = search.run()
    assert all(math.isfinite(r.metrics["child_loss"]) for r in result.history)
    assert result.history[-1].metrics["child_acc"] > 0.3  # chance is 0.25
    batch = next(iter(search.child.policy_batches(0)))
    derived = derive(search.strategy, lambda a: search.child.reward(a, batch), samples=10,
                     generator=runtime.generator("derive"))
    assert derived.chosen.reward == search.child.reward(to_architecture(derived.chosen.genotype), batch)
    trained = GenotypeTrainer(derived.chosen.genotype, dataset, tiny_eval_config(epochs=4, lr=0.05), runtime,
                              tmp_path / "eval.pt").run()
    assert trained.test_acc > 0.3


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_tiny_search_derive_on_text(name):
    corpus = make_synthetic_corpus(30, 1200, 240, 240, seed=1)
    config = RNNSearchConfig(epochs=2, batch_size=8, policy_batch_size=8, bptt=10, emb=12, hidden=12, dropout=0.1,
                             dropouth=0.1, dropoutx=0.1, dropouti=0.1)
    search = rnn_search(corpus, small(config, name), cpu_runtime(), None)
    result = search.run()
    assert all(math.isfinite(r.metrics["child_loss"]) for r in result.history)
    batch = next(iter(search.child.policy_batches(0)))
    derived = derive(search.strategy, lambda a: search.child.reward(a, batch, carry=False), 10,
                     torch.Generator().manual_seed(0))
    assert derived.chosen.genotype.space == "rnn" and 0 < derived.best.reward <= 80.0


@pytest.mark.parametrize("name", NAMES)
def test_a_63_bit_seed_works(name):
    """The runtime derives the strategy's seed with seed_for: up to 2**63 - 1. Arithmetic on it (seed * k + i)
    overflowed torch's manual_seed in every strategy that derived sub-streams so; hashing does not."""
    strategy = small_strategy(name, CNN_SPACE, seed=2**63 - 1)
    reward = planted_reward(CNN_SPACE, planted_architecture(CNN_SPACE))
    history = synthetic_search(strategy, reward, epochs=2, child_steps=3, policy_batches=3).run().history
    assert len(history) == 2
