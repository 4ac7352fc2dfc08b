"""The RNN child of the search: the c / perplexity reward, carried hidden states, a planted-reward policy on the
RNN space, variable-length training windows (seeded per epoch, lr scaled per step), too-short splits refused, the
search loop's metrics and exact resume on a small synthetic corpus."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from helpers import Recorder, StopAfter, cpu_runtime
from ednas_core.checkpoint import load_checkpoint
from ednas_core.child_rnn import TextChild, rnn_search
from ednas_core.config import RNNSearchConfig
from ednas_core.data.ptb import make_synthetic_corpus
from ednas_core.derive import derive
from ednas_core.knobs import ConfigError
from ednas_core.runtime import seed_for
from ednas_core.strategies import make_strategy as make_policy
from ednas_core.spaces import RNN_SPACE

CORPUS = make_synthetic_corpus(40, 1200, 400, 400, seed=0)


def tiny_rnn_config(**overrides) -> RNNSearchConfig:
    base = RNNSearchConfig(epochs=2, batch_size=8, policy_batch_size=8, bptt=10, emb=12, hidden=12, dropout=0.1,
                           dropouth=0.1, dropoutx=0.1, dropouti=0.1, policy_lr=0.01)
    return dataclasses.replace(base, **overrides)


def test_paper_defaults():
    c = RNNSearchConfig()
    assert (c.epochs, c.batch_size, c.bptt, c.emb, c.hidden, c.lr, c.momentum, c.weight_decay, c.grad_clip) == \
           (150, 256, 35, 300, 300, 20.0, 0.0, 5e-7, 0.25)
    assert (c.dropout, c.dropouth, c.dropoutx, c.dropouti, c.dropoute) == (0.75, 0.25, 0.75, 0.2, 0.0)
    assert (c.policy_lr, c.policy_beta1, c.policy_beta2, c.policy_weight_decay, c.baseline_decay, c.reward_c) == \
           (3e-3, 0.5, 0.999, 1e-3, 0.99, 80.0)


def test_uniform_model_has_perplexity_equal_to_the_vocabulary():
    child = TextChild.build(CORPUS, tiny_rnn_config(), cpu_runtime())
    with torch.no_grad():
        child.net.encoder.weight.zero_()  # the tied decoder then outputs zeros: a uniform distribution
    batch = next(iter(child.policy_batches(0)))
    arch = RNN_SPACE.validate({"recurrent": tuple(((0, 0),) for _ in range(8))})
    assert child.reward(arch, batch) == pytest.approx(80.0 / len(CORPUS.vocab), rel=1e-5)  # c / ppl, ppl = V


def test_reward_is_one_no_grad_eval_forward_and_carries_the_validation_state():
    child = TextChild.build(CORPUS, tiny_rnn_config(), cpu_runtime())
    calls = []
    child.net.register_forward_pre_hook(lambda m, a: calls.append((torch.is_grad_enabled(), m.training)))
    batches = child.policy_batches(0)
    batch = next(batches)
    arch = make_policy(RNN_SPACE, tiny_rnn_config(), 0).sample(torch.Generator().manual_seed(0))
    fixed = child.reward(arch, batch, carry=False)
    assert child.reward(arch, batch, carry=False) == fixed and calls == [(False, False)] * 2
    assert not child._valid_hidden.any()
    first = child.reward(arch, batch)
    assert first == fixed and child._valid_hidden.abs().sum() > 0  # state kept for the next window
    assert child.reward(arch, batch) != first


def test_planted_reward_concentrates_the_rnn_policy():
    """reward = share of nodes using relu: REINFORCE must make relu dominate within a few hundred steps."""
    policy = make_policy(RNN_SPACE, tiny_rnn_config(policy_lr=0.05), seed=0)
    gen = torch.Generator().manual_seed(0)
    relu = RNN_SPACE.cell.ops.index("relu")

    def share(arch):
        return sum(op == relu for ((_, op),) in arch["recurrent"]) / 8

    for _ in range(300):
        arch = policy.sample(gen)
        policy.learn(arch, share(arch))
    samples = [share(policy.sample(gen)) for _ in range(100)]
    assert np.mean(samples) > 0.8
    assert all(op == relu for ((_, op),) in policy.final_architecture()["recurrent"])


def run(tmp_path, name="ckpt.pt", callbacks=(), **overrides):
    search = rnn_search(CORPUS, tiny_rnn_config(**overrides), cpu_runtime(), tmp_path / name, callbacks)
    return search, search.run()


def test_epoch_reports_metrics_and_counts(tmp_path):
    rec = Recorder()
    search, result = run(tmp_path, callbacks=[rec], epochs=1)
    m = rec.reports[0].metrics
    for key in ("child_loss", "child_ppl", "child_acc", "reward", "baseline", "entropy", "entropy_recurrent_node",
                "entropy_recurrent_edge", "child_tokens_per_s", "policy_tokens_per_s"):
        assert math.isfinite(m[key]), key
    assert not any("images" in key for key in m), sorted(m)  # a text child's throughput is in tokens
    assert m["child_ppl"] == pytest.approx(math.exp(m["child_loss"]))
    assert 0 < m["reward"] < 80
    child_steps, policy_steps = search.child.steps_per_epoch
    assert (child_steps, policy_steps) == (len(search.child.window_lengths(0)), 5)
    assert search.child.images_per_epoch == (149 * 8, 49 * 8)
    assert rec.reports[0].counts["recurrent"].sum() == 8 * (child_steps + policy_steps)
    assert set(result.final_architecture) == {"recurrent"}


def test_child_windows_vary_are_seeded_per_epoch_and_fixed_when_off():
    child = TextChild.build(CORPUS, tiny_rnn_config(), cpu_runtime())
    assert child.config.variable_bptt  # the default, as in DARTS's search
    epoch0, epoch1 = child.window_lengths(0), child.window_lengths(1)
    assert len(set(epoch0)) > 3 and epoch0 != epoch1  # lengths vary within and between epochs
    assert sum(epoch0) == sum(epoch1) == 149 and 5 <= min(epoch0[:-1]) and max(epoch0) <= 30  # bptt 10: 5..30
    again = TextChild.build(CORPUS, tiny_rnn_config(), cpu_runtime())
    assert again.window_lengths(0) == epoch0 and again.window_lengths(1) == epoch1  # same seed, same lengths
    assert TextChild.build(CORPUS, tiny_rnn_config(), cpu_runtime(seed=1)).window_lengths(0) != epoch0
    assert [x.shape[0] for x, _ in child.train_batches(1)] == epoch1
    fixed = TextChild.build(CORPUS, tiny_rnn_config(variable_bptt=False), cpu_runtime())
    assert fixed.window_lengths(0) == fixed.window_lengths(1) == [10] * 14 + [9]
    assert fixed.steps_per_epoch == (15, 5)


def test_child_step_scales_the_lr_by_the_window_length_and_restores_it():
    child = TextChild.build(CORPUS, tiny_rnn_config(lr=20.0), cpu_runtime())
    seen = []
    child.optimizer.register_step_pre_hook(lambda opt, args, kwargs: seen.append(opt.param_groups[0]["lr"]))
    arch = make_policy(RNN_SPACE, tiny_rnn_config(), 0).sample(torch.Generator().manual_seed(0))
    assert child.start_epoch(0) == 20.0
    data = child.train_data
    for length in (10, 4, 17):  # bptt 10
        child.train_step(arch, (data[:length], data[1 : length + 1]))
        assert child.optimizer.param_groups[0]["lr"] == 20.0  # restored after the step
    assert seen == [20.0, 8.0, 34.0]


@pytest.mark.parametrize("alternate", ["epoch", "step"])
def test_progress_totals_and_counts_follow_each_epochs_windows(tmp_path, alternate):
    rec = Recorder()
    search, _ = run(tmp_path, callbacks=[rec], epochs=2, alternate=alternate)
    lengths = [search.child.window_lengths(e) for e in range(2)]
    assert len(lengths[0]) != len(lengths[1])  # so a total counted for the wrong epoch would show
    ends = [(step, total) for phase, step, total in rec.progress if phase == "child" and step == total]
    assert ends == [(len(lengths[0]), len(lengths[0])), (len(lengths[1]), len(lengths[1]))]
    for report, epoch_lengths in zip(rec.reports, lengths):
        rewards = 5 if alternate == "epoch" else len(epoch_lengths)  # step: one policy step after every child step
        assert report.metrics["reward_count"] == rewards
        assert report.counts["recurrent"].sum() == 8 * (len(epoch_lengths) + rewards)  # each child and reward step


def test_splits_too_short_for_one_window_per_column_name_the_setting():
    with pytest.raises(ConfigError, match=r"^search\.batch_size: 200 columns of the training split \(1200 tokens\)"
                                          r".*lower search\.batch_size to at most 109$"):
        TextChild.build(CORPUS, tiny_rnn_config(batch_size=200), cpu_runtime())
    with pytest.raises(ConfigError, match=r"^search\.policy_batch_size: .* validation split .* at most 36$"):
        TextChild.build(CORPUS, tiny_rnn_config(policy_batch_size=37), cpu_runtime())
    with pytest.raises(ConfigError, match=r"^search\.bptt: the validation split has 400 tokens.* at most 399$"):
        TextChild.build(CORPUS, tiny_rnn_config(bptt=400, batch_size=1, policy_batch_size=1), cpu_runtime())
    TextChild.build(CORPUS, tiny_rnn_config(policy_batch_size=36), cpu_runtime())  # 400 // 36 = 11 = bptt + 1


def test_resumed_search_equals_uninterrupted_search(tmp_path):
    """With variable child windows (the default): epoch 1's lengths come from (seed, 1), not from a generator
    that the killed run advanced."""
    assert tiny_rnn_config().variable_bptt
    full, _ = run(tmp_path, "full.pt", epochs=2)
    with pytest.raises(StopAfter.Killed):
        run(tmp_path, "killed.pt", callbacks=[StopAfter(0)], epochs=2)
    assert load_checkpoint(tmp_path / "killed.pt")["epoch"] == 0
    rec = Recorder()
    resumed, result = run(tmp_path, "killed.pt", callbacks=[rec], epochs=2)
    assert rec.resumed == [0] and [r.epoch for r in rec.reports] == [1] and result.resumed_from == 1
    for (name, a), (_, b) in zip(full.child.net.state_dict().items(), resumed.child.net.state_dict().items()):
        assert torch.equal(a, b), name
    for a, b in zip(full.strategy.vectors.parameters(), resumed.strategy.vectors.parameters()):
        assert torch.equal(a, b)
    timing = {"child_time_s", "policy_time_s", "epoch_time_s", "child_tokens_per_s", "policy_tokens_per_s"}
    for ra, rb in zip(full.history, resumed.history):
        assert {k: v for k, v in ra.metrics.items() if k not in timing} == \
               {k: v for k, v in rb.metrics.items() if k not in timing}
        assert np.array_equal(ra.counts["recurrent"], rb.counts["recurrent"])


def test_alternate_step_and_derive_with_a_fixed_batch(tmp_path):
    search, _ = run(tmp_path, epochs=1, alternate="step")
    child = search.child
    batch = next(iter(child.policy_batches(0)))
    result = derive(search.strategy, lambda a: child.reward(a, batch, carry=False), 10,
                    torch.Generator().manual_seed(0))
    assert result.chosen.genotype.space == "rnn" and result.best.reward >= max(c.reward for c in result.candidates)
    again = derive(search.strategy, lambda a: child.reward(a, batch, carry=False), 10,
                   torch.Generator().manual_seed(0))
    assert again.best.reward == result.best.reward
