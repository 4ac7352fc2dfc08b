"""The alternating search loop: metrics, counts, exact resume, the policy step's single no-grad forward,
non-finite detection, and checkpoint safety."""

from __future__ import annotations


import numpy as np
import pytest
import torch

from helpers import Recorder, StopAfter, cpu_runtime, tiny_search_config
from ednas_core.checkpoint import load_checkpoint
from ednas_core.child_cnn import cnn_search
from ednas_core.config import DataConfig
from ednas_core.epochs import CheckpointMismatch, NonFiniteError
from ednas_core.search import SearchCallback


def run(dataset, tmp_path, name="ckpt.pt", callbacks=(), seed=0, **overrides):
    search = cnn_search(dataset, tiny_search_config(**overrides), DataConfig(), cpu_runtime(seed),
                        tmp_path / name, callbacks)
    return search, search.run()


def test_epoch_reports_metrics_probabilities_and_counts(pattern_dataset, tmp_path):
    rec = Recorder()
    search, result = run(pattern_dataset, tmp_path, callbacks=[rec], epochs=2)
    assert [r.epoch for r in rec.reports] == [0, 1]
    m = rec.reports[-1].metrics
    for key in ("child_loss", "child_acc", "reward", "baseline", "advantage", "entropy", "entropy_normal_node",
                "entropy_normal_edge", "entropy_reduce_node", "entropy_reduce_edge", "lr", "child_time_s",
                "policy_time_s", "child_images_per_s", "policy_images_per_s"):
        assert np.isfinite(m[key]), key
    probs = rec.reports[-1].probabilities
    np.testing.assert_allclose(probs["normal_edge"].sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probs["reduce_node"].sum(1), 1.0, atol=1e-6)
    child_steps, policy_steps = search.child.steps_per_epoch
    for cell in ("normal", "reduce"):
        # 4 nodes x 2 selected edges per sampled architecture, one architecture per step of either phase
        assert rec.reports[0].counts[cell].sum() == 8 * (child_steps + policy_steps)
    assert ("child", child_steps, child_steps) in rec.progress and ("policy", policy_steps, policy_steps) in rec.progress
    assert set(result.final_architecture) == {"normal", "reduce"}


def test_resumed_run_equals_uninterrupted_run(pattern_dataset, tmp_path):
    full, _ = run(pattern_dataset, tmp_path, "full.pt", epochs=3)
    with pytest.raises(StopAfter.Killed):
        run(pattern_dataset, tmp_path, "killed.pt", callbacks=[StopAfter(1)], epochs=3)
    assert load_checkpoint(tmp_path / "killed.pt")["epoch"] == 1
    rec = Recorder()
    resumed, result = run(pattern_dataset, tmp_path, "killed.pt", callbacks=[rec], epochs=3)
    assert rec.resumed == [0, 1] and [r.epoch for r in rec.reports] == [2]
    assert result.resumed_from == 2
    for (name, a), (_, b) in zip(full.child.net.state_dict().items(), resumed.child.net.state_dict().items()):
        assert torch.equal(a, b), name
    for a, b in zip(full.strategy.vectors.parameters(), resumed.strategy.vectors.parameters()):
        assert torch.equal(a, b)
    assert full.strategy.baseline.state_dict() == resumed.strategy.baseline.state_dict()
    timing = {"child_time_s", "policy_time_s", "epoch_time_s", "child_images_per_s", "policy_images_per_s"}
    for ra, rb in zip(full.history, resumed.history):
        assert {k: v for k, v in ra.metrics.items() if k not in timing} == \
               {k: v for k, v in rb.metrics.items() if k not in timing}
        for cell in ("normal", "reduce"):
            assert np.array_equal(ra.counts[cell], rb.counts[cell])


def test_alternate_step_interleaves_one_policy_step_per_child_step(pattern_dataset, tmp_path):
    rec = Recorder()
    search, _ = run(pattern_dataset, tmp_path, callbacks=[rec], epochs=1, alternate="step")
    child_steps, _ = search.child.steps_per_epoch
    assert rec.reports[0].counts["normal"].sum() == 8 * 2 * child_steps


def test_checkpoint_of_other_settings_is_refused(pattern_dataset, tmp_path):
    run(pattern_dataset, tmp_path, epochs=1)
    with pytest.raises(CheckpointMismatch, match="other settings"):
        run(pattern_dataset, tmp_path, epochs=1, lr=0.1)


def test_policy_step_is_one_no_grad_forward(pattern_dataset, tmp_path):
    """Regression for the authors' code, which ran the policy forward twice with gradients enabled."""
    search = cnn_search(pattern_dataset, tiny_search_config(epochs=1), DataConfig(), cpu_runtime(), None)
    calls = []
    search.child.net.register_forward_pre_hook(lambda m, a: calls.append(torch.is_grad_enabled()))
    batch = next(iter(search.child.policy_batches(0)))
    arch = search.strategy.train_architecture(torch.Generator().manual_seed(0))
    reward = search.child.reward(arch, batch)
    assert calls == [False]
    assert 0.0 <= reward <= 1.0
    assert not search.child.net.training  # rewards use the shared weights in eval mode


def test_different_seeds_give_different_searches(pattern_dataset, tmp_path):
    """Regression for the authors' hard-coded seed: the seed must reach splits, sampling and init."""
    a, _ = run(pattern_dataset, tmp_path, "a.pt", seed=1, epochs=1)
    b, _ = run(pattern_dataset, tmp_path, "b.pt", seed=2, epochs=1)
    c, _ = run(pattern_dataset, tmp_path, "c.pt", seed=1, epochs=1)
    pa, pb, pc = (s.strategy.vectors.edge_logits["normal"] for s in (a, b, c))
    assert torch.equal(pa, pc) and not torch.equal(pa, pb)


def test_non_finite_loss_stops_with_a_clear_error_and_keeps_last_checkpoint(pattern_dataset, tmp_path):
    search = cnn_search(pattern_dataset, tiny_search_config(epochs=2), DataConfig(), cpu_runtime(), tmp_path / "c.pt",
                        [StopAfter(0)])
    with pytest.raises(StopAfter.Killed):
        search.run()
    before = (tmp_path / "c.pt").read_bytes()
    search = cnn_search(pattern_dataset, tiny_search_config(epochs=2), DataConfig(), cpu_runtime(), tmp_path / "c.pt")

    class PoisonOnResume(SearchCallback):  # the weights diverge during epoch 2
        def on_resume(self, history):
            with torch.no_grad():
                search.child.net.classifier.weight.fill_(float("nan"))

    search.callbacks.append(PoisonOnResume())
    with pytest.raises(NonFiniteError, match="epoch 2"):
        search.run()
    assert (tmp_path / "c.pt").read_bytes() == before


def test_random_strategy_keeps_a_uniform_policy(pattern_dataset, tmp_path):
    search, _ = run(pattern_dataset, tmp_path, epochs=1, strategy="random")
    probs = search.strategy.probabilities()
    np.testing.assert_allclose(probs["normal_edge"], 1 / 7, atol=1e-6)
