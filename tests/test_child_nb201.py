"""The NB201 child and search: the config mapping (init_channels = C, layers = N cells per stage), the reward's
single no-grad eval forward, a tiny search with the ranking probe (rank metrics every N epochs and at the last,
NaN otherwise, probe_time_s apart from the phases' times), a probe that leaves the search unchanged, and a
killed-then-resumed run equal to an uninterrupted one."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import Recorder, StopAfter, cpu_runtime, tiny_search_config
from ednas_core.checkpoint import load_checkpoint
from ednas_core.child_nb201 import NB201Child, nb201_search
from ednas_core.config import DataConfig
from ednas_core.ranking import RankingProbe
from ednas_core.spaces import NB201_SPACE
from ednas_core.supernet.nb201 import NB201Cell, NB201SearchNetwork, ResNetBlock

CELL = NB201_SPACE.cell
RANK_KEYS = ("rank_kendall_tau", "rank_spearman_rho", "rank_top5_precision")
TIMING = {"child_time_s", "policy_time_s", "epoch_time_s", "child_images_per_s", "policy_images_per_s",
          "probe_time_s"}


def _true_accuracy(arch):
    """A made-up benchmark table (the probe only needs some fixed number per architecture)."""
    return float(sum(CELL.edge_codes(arch["cell"])))


def _config(**overrides):
    return tiny_search_config(**{"layers": 2, "init_channels": 4, **overrides})


def _answer(arch):
    """An AnswerProbe on the made-up table."""
    return {"answer_true": _true_accuracy(arch)}


def run(dataset, tmp_path, name="ckpt.pt", callbacks=(), probe_every=2, seed=0, answer=None, **overrides):
    config = _config(**overrides)

    def probe(child):
        return RankingProbe.for_child(NB201_SPACE, child, _true_accuracy, samples=12, batches=1,
                                      seed=seed).every(child, probe_every, config.epochs)

    search = nb201_search(dataset, config, DataConfig(), cpu_runtime(seed), tmp_path / name if name else None,
                          callbacks, epoch_probe=probe if probe_every else None, answer_probe=answer)
    return search, search.run()


def _same(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(a[k] == b[k] or (math.isnan(a[k]) and math.isnan(b[k])) for k in a)


def test_config_maps_to_the_benchmark_skeleton(pattern_dataset):
    child = NB201Child.build(pattern_dataset, _config(layers=3, init_channels=6), DataConfig(), cpu_runtime())
    net = child.net
    assert isinstance(net, NB201SearchNetwork)
    assert sum(isinstance(m, NB201Cell) for m in net.cells) == 9 and sum(isinstance(m, ResNetBlock) for m in net.cells) == 2
    assert net.stem[0].out_channels == 6 and net.classifier.in_features == 24
    assert net.classifier.out_features == pattern_dataset.num_classes


def test_reward_is_one_no_grad_eval_forward(pattern_dataset):
    child = NB201Child.build(pattern_dataset, _config(), DataConfig(), cpu_runtime())
    calls = []
    child.net.register_forward_pre_hook(lambda m, a: calls.append((torch.is_grad_enabled(), m.training)))
    arch = {"cell": CELL.cell_from_edge_codes([3, 3, 4, 2, 3, 1])}
    child.train_step(arch, next(iter(child.train_batches(0))))
    reward = child.reward(arch, next(iter(child.policy_batches(0))))
    assert calls == [(True, True), (False, False)] and 0.0 <= reward <= 1.0


def test_search_logs_rank_metrics_every_n_epochs_and_nan_otherwise(pattern_dataset, tmp_path):
    rec = Recorder()
    search, result = run(pattern_dataset, tmp_path, callbacks=[rec], epochs=3, probe_every=2)
    assert [r.epoch for r in rec.reports] == [0, 1, 2]
    keys = set(rec.reports[0].metrics)
    assert all(set(r.metrics) == keys for r in rec.reports)
    for r in rec.reports:
        ran = r.epoch in (1, 2)  # every 2nd epoch and the last
        for k in RANK_KEYS:
            assert math.isnan(r.metrics[k]) != ran, (r.epoch, k)
        assert r.metrics["probe_time_s"] >= 0 and np.isfinite(r.metrics["child_loss"])
        assert r.metrics["epoch_time_s"] == r.metrics["child_time_s"] + r.metrics["policy_time_s"]
    m = rec.reports[-1].metrics
    assert -1 <= m["rank_kendall_tau"] <= 1 and -1 <= m["rank_spearman_rho"] <= 1
    assert 0 <= m["rank_top5_precision"] <= 1
    assert set(result.final_architecture) == {"cell"}
    assert rec.reports[0].counts["cell"].shape == (6, 4) and rec.reports[0].counts["cell"].sum() > 0


def test_probe_leaves_the_search_unchanged(pattern_dataset, tmp_path):
    """The ranking probe and the answer probe (tasks.nb201.answer_probe's kind: the strategy's final_architecture
    judged every epoch) measure without changing a weight, a policy value or a sampled architecture."""
    with_probe, _ = run(pattern_dataset, tmp_path, None, epochs=2, probe_every=1, answer=_answer)
    without, _ = run(pattern_dataset, tmp_path, None, epochs=2, probe_every=0)
    for (name, a), (_, b) in zip(with_probe.child.net.state_dict().items(), without.child.net.state_dict().items()):
        assert torch.equal(a, b), name
    for a, b in zip(with_probe.strategy.vectors.parameters(), without.strategy.vectors.parameters()):
        assert torch.equal(a, b)
    for ra, rb in zip(with_probe.history, without.history):
        assert "probe_time_s" not in rb.metrics
        assert _same({k: v for k, v in ra.metrics.items() if k not in TIMING and k not in RANK_KEYS
                      and k != "answer_true"}, {k: v for k, v in rb.metrics.items() if k not in TIMING})
        assert np.array_equal(ra.counts["cell"], rb.counts["cell"])
        assert "answer_true" not in rb.metrics
    assert with_probe.history[-1].metrics["answer_true"] == _true_accuracy(with_probe.strategy.final_architecture())


def test_resumed_run_equals_uninterrupted_run(pattern_dataset, tmp_path):
    full, _ = run(pattern_dataset, tmp_path, "full.pt", epochs=3, probe_every=2)
    with pytest.raises(StopAfter.Killed):
        run(pattern_dataset, tmp_path, "killed.pt", callbacks=[StopAfter(0)], epochs=3, probe_every=2)
    assert load_checkpoint(tmp_path / "killed.pt")["epoch"] == 0
    rec = Recorder()
    resumed, result = run(pattern_dataset, tmp_path, "killed.pt", callbacks=[rec], epochs=3, probe_every=2)
    assert rec.resumed == [0] and [r.epoch for r in rec.reports] == [1, 2] and result.resumed_from == 1
    for (name, a), (_, b) in zip(full.child.net.state_dict().items(), resumed.child.net.state_dict().items()):
        assert torch.equal(a, b), name
    for a, b in zip(full.strategy.vectors.parameters(), resumed.strategy.vectors.parameters()):
        assert torch.equal(a, b)
    assert full.strategy.baseline.state_dict() == resumed.strategy.baseline.state_dict()
    assert len(full.history) == len(resumed.history) == 3
    for ra, rb in zip(full.history, resumed.history):
        assert _same({k: v for k, v in ra.metrics.items() if k not in TIMING},
                     {k: v for k, v in rb.metrics.items() if k not in TIMING})
        assert np.array_equal(ra.counts["cell"], rb.counts["cell"])
    assert not math.isnan(resumed.history[1].metrics["rank_kendall_tau"])  # measured after the resume


def test_random_strategy_runs_on_nb201(pattern_dataset, tmp_path):
    search, result = run(pattern_dataset, tmp_path, None, epochs=1, probe_every=0, strategy="random")
    assert NB201_SPACE.validate(result.final_architecture)
