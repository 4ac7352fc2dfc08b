"""Tabular NAS-Bench-201 search (ednas_core/tabular.py): TableChild answers the table's 12-epoch validation
accuracy / 100 and keeps the best-validation architecture after every query; tabular_search runs the real search
loop for exactly `budget` queries over ceil(budget / queries_per_epoch) epochs, queries_per_epoch in each, with any
strategy; a search killed after an epoch and resumed from its checkpoint ends identical to an uninterrupted one;
derive.mode queried picks among the search's own look-ups without a new one.

The mechanics run on a made-up table of all 15,625 cells (always); the look-ups against the published files need
EDNAS_DATA_ROOT and skip without it."""

import csv
import dataclasses
import math

import numpy as np
import pytest

from ednas_core.data.nb201_table import N_ARCHITECTURES, NB201Table, all_arch_strings
from ednas_core.spaces import NB201_SPACE, to_nb201_string
from ednas_core.tabular import TableChild, TabularResult, tabular_epochs, tabular_search
from ednas_core.tasks.nb201 import answer_probe
from helpers import NB201_TABLES, nb201_search_config, needs_nb201_table, Recorder, StopAfter, cpu_runtime

needs_table = needs_nb201_table
search_config = nb201_search_config


@pytest.fixture(scope="module")
def table() -> NB201Table:
    """All 15,625 cells with made-up accuracies whose validation and test orders differ."""
    i = np.arange(N_ARCHITECTURES)
    return NB201Table(all_arch_strings(), 40.0 + (i * 13 % 449) / 10.0, {"cifar10": 60.0 + (i * 7 % 331) / 10.0})


def _run(table, strategy, seed=0, checkpoint=None, callbacks=(), probe=None, **overrides):
    search = tabular_search(table, search_config(strategy=strategy, **overrides), cpu_runtime(seed), checkpoint,
                            callbacks, answer_probe=probe)
    search.run()
    return search


# --- TableChild ------------------------------------------------------------------------------------------------


def test_child_answers_the_table_and_tracks_the_best_validation_cell(table):
    child = TableChild(table, budget=5, queries_per_epoch=2)
    assert child.steps_per_epoch == (0, 2) and child.images_per_epoch == (0, 2) and child.reward_budget == 5
    assert list(child.train_batches(0)) == [] and list(child.policy_batches(0)) == [0, 1]
    metrics = child.epoch_metrics()
    assert set(metrics) == {"child_loss", "child_acc", "queries", "best_valid_acc", "best_test_acc", "best_rank"}
    assert metrics["queries"] == 0 and all(math.isnan(metrics[k]) for k in metrics if k != "queries")
    picks = [table.arch(i) for i in (10, 300, 7, 300, 9000)]
    rewards = [child.reward(arch, None) for arch in picks]
    assert rewards == [table.valid_acc(a) / 100.0 for a in picks]
    for n in range(1, len(picks) + 1):
        best = max(range(n), key=lambda k: (table.valid_acc(picks[k]), -k))  # the first of equals
        assert child.curve[n - 1] == table.test_acc(picks[best])
    metrics = child.epoch_metrics()
    assert metrics["queries"] == 5 and metrics["best_test_acc"] == child.curve[-1]
    assert metrics["best_valid_acc"] == max(table.valid_acc(a) for a in picks)
    assert math.isnan(metrics["child_loss"]) and math.isnan(metrics["child_acc"])
    with pytest.raises(RuntimeError, match="no child steps"):
        child.train_step(picks[0], None)
    again = TableChild(table, 5, 2)
    again.load_state_dict(child.state_dict())
    assert (again.queried, again.best, again.curve) == (child.queried, child.best, child.curve)


def test_child_refuses_an_empty_budget(table):
    with pytest.raises(ValueError, match="budget >= 1"):
        TableChild(table, 0, 10)


# --- the search loop over the table ---------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["ednas", "rea", "random"])
@pytest.mark.parametrize("budget, per_epoch", [(37, 10), (30, 10), (5, 7)])
def test_budget_is_respected_exactly(table, strategy, budget, per_epoch):
    search = _run(table, strategy, budget=budget, queries_per_epoch=per_epoch)
    assert search.config.epochs == tabular_epochs(budget, per_epoch) == math.ceil(budget / per_epoch)
    counts = [int(r.metrics["reward_count"]) for r in search.history]
    assert sum(counts) == budget == len(search.child.queried)
    assert counts == [min(per_epoch, budget - per_epoch * e) for e in range(len(counts))]
    assert [r.metrics["queries"] for r in search.history] == list(np.cumsum(counts).astype(float))
    result = TabularResult.of(search)
    assert result.queries == budget and len(result.curve) == budget


def test_a_budget_below_what_the_strategy_wants_stops_later_epochs(table):
    """REA's whole initial population in one proposal would be 10; a budget of 4 per 10-wide epoch scores 4."""
    search = _run(table, "rea", budget=4, queries_per_epoch=10)
    assert len(search.child.queried) == 4 and len(search.strategy.population) == 4


@pytest.mark.parametrize("strategy", ["ednas", "random", "rea", "enas", "evnas", "nao"])
def test_every_epoch_scores_queries_per_epoch_rewards(table, strategy):
    """The budget spreads over all ceil(budget / queries_per_epoch) epochs with params.yaml's settings, also for the
    strategies that want more rewards an epoch (ENAS: train_steps * num_aggregate = 20; NAO: the rest of its
    50-cell pool): no epoch is left without rewards (the loop caps an epoch at queries_per_epoch)."""
    search = _run(table, strategy, budget=150, queries_per_epoch=10)
    assert search.config.epochs == 15
    assert [int(r.metrics["reward_count"]) for r in search.history] == [10] * 15
    assert all(math.isfinite(r.metrics["reward"]) for r in search.history)
    assert len(search.child.queried) == 150
    throughput = {k for k in search.history[0].metrics if k.endswith("_per_s")}
    assert throughput == {"child_lookups_per_s", "policy_lookups_per_s"}  # a reward is a look-up, not an image


@pytest.mark.parametrize("update_every,budget,rounds", [(1, 150, 3), (3, 150, 1), (4, 150, 0), (1, 50, 1), (1, 45, 0)])
def test_nao_rounds_need_its_whole_pool_scored_within_the_budget(table, update_every, budget, rounds):
    """NAO scores at most queries_per_epoch (10) pool members on every update_every-th epoch, so its first round
    (the 50-cell pool scored, the predictor trained) needs 5 such epochs: the runs that check-params refuses
    (tests/test_config.py: update_every 4 or a budget of 45) would run none."""
    s = nb201_search_config().nao
    search = _run(table, "nao", budget=budget, nao=dataclasses.replace(s, update_every=update_every, epochs=2))
    assert search.strategy.rounds == rounds


@pytest.mark.parametrize("strategy,budget,steps", [("enas", 19, 0), ("enas", 20, 1), ("evnas", 9, 0), ("evnas", 10, 1),
                                                   ("rea", 10, 0), ("rea", 11, 1)])
def test_the_first_learning_step_comes_at_the_budget_check_params_asks_for(table, strategy, budget, steps):
    """ENAS's first Adam step after num_aggregate (20) look-ups, EvNAS's first bred generation after its
    population (10), REA's first mutant after its population (10) and one more: the budgets below which
    tests/test_config.py's check refuses a tabular search."""
    search = _run(table, strategy, budget=budget)
    s = search.strategy
    done = {"enas": lambda: len(s.optimizer.state_dict()["state"]) and
            int(next(iter(s.optimizer.state_dict()["state"].values()))["step"]),
            "evnas": lambda: s.generation,
            "rea": lambda: int(sum(r.metrics["mutants"] for r in search.history))}[strategy]()
    assert done == steps


@pytest.mark.parametrize("strategy", ["ednas", "rea", "enas", "nao"])
def test_resumed_search_equals_uninterrupted(table, tmp_path, strategy):
    overrides = dict(budget=45, queries_per_epoch=10)
    whole = _run(table, strategy, seed=3, **overrides)
    checkpoint = tmp_path / "checkpoint.pt"
    with pytest.raises(StopAfter.Killed):
        _run(table, strategy, seed=3, checkpoint=checkpoint, callbacks=[StopAfter(1)], **overrides)
    recorder = Recorder()
    resumed = _run(table, strategy, seed=3, checkpoint=checkpoint, callbacks=[recorder], **overrides)
    assert recorder.resumed == [0, 1]
    assert resumed.child.queried == whole.child.queried
    assert TabularResult.of(resumed) == TabularResult.of(whole)
    for a, b in zip(resumed.history, whole.history):
        same = {k: v for k, v in a.metrics.items() if not k.endswith(("_time_s", "_per_s"))}
        assert same.keys() == {k for k in b.metrics if not k.endswith(("_time_s", "_per_s"))}
        assert all(v == b.metrics[k] or (math.isnan(v) and math.isnan(b.metrics[k])) for k, v in same.items())


class _Answers(Recorder):
    """Records the strategy's final_architecture at every epoch's end (on_epoch_end runs after the epoch)."""

    def __init__(self, search_holder):
        super().__init__()
        self.holder, self.answers = search_holder, []

    def on_epoch_end(self, report):
        super().on_epoch_end(report)
        self.answers.append(to_nb201_string(self.holder[0].strategy.final_architecture()))


@pytest.mark.parametrize("strategy", ["ednas", "rea", "enas", "evnas", "nao"])
def test_the_answer_probe_judges_each_epochs_answer_and_changes_nothing(table, strategy):
    """answer_test_acc / answer_rank of every epoch are the table's for the strategy's final_architecture at that
    epoch's end; the search with the probe computes exactly what the one without does."""
    overrides = dict(budget=60, queries_per_epoch=10)
    plain = _run(table, strategy, seed=2, **overrides)
    holder: list = []
    recorder = _Answers(holder)
    search = tabular_search(table, search_config(strategy=strategy, **overrides), cpu_runtime(2), None, [recorder],
                            answer_probe=answer_probe(table))
    holder.append(search)
    search.run()
    assert len(recorder.answers) == len(search.history) == 6
    for report, answer in zip(search.history, recorder.answers):
        assert report.metrics["answer_test_acc"] == table.test_acc(answer)
        assert report.metrics["answer_rank"] == table.rank(answer)
    assert search.child.queried == plain.child.queried and TabularResult.of(search) == TabularResult.of(plain)
    for a, b in zip(search.history, plain.history):
        kept = {k: v for k, v in a.metrics.items() if not k.startswith("answer_") and not k.endswith(("_time_s",
                                                                                                     "_per_s"))}
        assert kept.keys() == {k for k in b.metrics if not k.endswith(("_time_s", "_per_s"))}
        assert all(v == b.metrics[k] or (math.isnan(v) and math.isnan(b.metrics[k])) for k, v in kept.items())


def test_random_search_has_no_answer_to_judge(table):
    search = _run(table, "random", probe=answer_probe(table), budget=20, queries_per_epoch=10)
    assert not any(k.startswith("answer_") for r in search.history for k in r.metrics)


def test_derive_queried_looks_nothing_up_and_chooses_the_best_queried_cell(table):
    """derive.mode queried: the candidates are the search's distinct look-ups in query order with their table
    rewards; best == chosen == the best-validation look-up (the first of equals), and no query is recorded."""
    from ednas_core.tasks.nb201 import best_queried, derive_queried

    search = _run(table, "rea", budget=60)
    child = search.child
    record = (list(child.queried), child.best, list(child.curve))
    result = derive_queried(child, search.strategy)
    assert (child.queried, child.best, child.curve) == record, "derive extended the search's query record"
    distinct = list(dict.fromkeys(child.queried))
    assert [table.index(c.architecture) for c in result.candidates] == distinct
    assert [c.reward for c in result.candidates] == [table.valid_12[i] / 100.0 for i in distinct]
    assert result.mode == "queried" and result.chosen == result.best == result.ranked[0]
    assert table.index(result.chosen.architecture) == table.index(best_queried(child)) == child.best
    assert result.chosen.reward == max(table.valid_12[i] for i in child.queried) / 100.0
    final = search.strategy.final_architecture()
    assert table.index(result.argmax.architecture) == table.index(final)
    assert result.argmax.reward == table.valid_acc(final) / 100.0
    # equal rewards rank in query order (not by log-probability), so the first of equals is chosen
    tops = [i for i in distinct if table.valid_12[i] == table.valid_12[child.best]]
    assert [table.index(c.architecture) for c in result.ranked[:len(tops)]] == tops


def test_seeds_differ_and_repeat(table):
    a, b, c = (_run(table, "rea", seed=s, budget=30) for s in (1, 1, 2))
    assert a.child.queried == b.child.queried != c.child.queried


def test_result_is_judged_by_the_table(table):
    search = _run(table, "rea", budget=40)
    result = TabularResult.of(search)
    queried = [table.arch_strings[i] for i in search.child.queried]
    best = max(queried, key=lambda s: table.valid_acc(s))
    assert result.best_arch == best and result.best_valid_acc == table.valid_acc(best)
    assert (result.best_test_acc, result.best_rank) == (table.test_acc(best), table.rank(best))
    final = to_nb201_string(search.strategy.final_architecture())
    assert (result.final_arch, result.final_test_acc, result.final_rank) == (final, table.test_acc(final),
                                                                            table.rank(final))
    assert result.strategy == "rea" and result.seed == 0


# --- the published table --------------------------------------------------------------------------------------


@needs_table
def test_rewards_are_the_published_validation_accuracies():
    folder = NB201_TABLES
    real = NB201Table.load(folder)
    with open(folder / "nb201_12epoch_accs.csv", newline="") as f:
        valid_of = {row["cellstr"]: float(row["cifar10-val"]) for row in csv.DictReader(f)}
    with open(folder / "nats_bench.csv", newline="") as f:
        test_of = {row["ArchitectureString"]: float(row["CIFAR10TestAccuracy200Epochs"]) for row in csv.DictReader(f)}
    search = _run(real, "ednas", budget=20)
    rewards = [r for report in search.history for r in [report.metrics["reward"]]]
    strings = [real.arch_strings[i] for i in search.child.queried]
    assert np.mean([valid_of[s] / 100 for s in strings[:10]]) == pytest.approx(rewards[0], abs=1e-12)
    result = TabularResult.of(search)
    assert result.best_valid_acc == max(valid_of[s] for s in strings)
    assert result.best_test_acc == test_of[result.best_arch]
    assert NB201_SPACE.validate(real.arch(real.index(result.best_arch)))
