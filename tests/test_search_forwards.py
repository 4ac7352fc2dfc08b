"""Regression for the authors' policy step, which ran the child's forward twice with gradients enabled: during
real searches (the loop of ednas_core/search.py as the search stage builds it, tasks.make_search), every forward
of the weight-sharing network is counted with its grad mode, and a policy step must be exactly one no-grad,
eval-mode forward per reward; each child step one grad-enabled, train-mode forward; nothing else runs the net."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from helpers import cpu_runtime, make_pattern_dataset, tiny_search_config
from ednas_core.config import DataConfig, RNNSearchConfig
from ednas_core.data.ptb import make_synthetic_corpus
from ednas_core.tasks import make_search


class ForwardLog:
    """Every forward of the search's network (a pre-hook on the module), labelled with the child call it ran
    in ('train' for train_step, 'reward' for reward, None outside both), and the rewards the strategy observed."""

    def __init__(self, search):
        self.forwards: list[tuple[str | None, bool, bool]] = []  # (label, grad enabled, module in train mode)
        self.calls: list[tuple[str, int]] = []                   # (label, forwards it ran), in call order
        self.steps: list[tuple[int, int]] = []                   # per observe(): (rewards given, reward forwards)
        self._label: str | None = None
        child, strategy = search.child, search.strategy
        child.net.register_forward_pre_hook(self._hook)
        self._wrap(child, "train_step", "train")
        self._wrap(child, "reward", "reward")
        observe = strategy.observe

        def observed(archs, rewards):
            since = [i for i, (label, _) in enumerate(self.calls) if label == "observe"]
            start = since[-1] + 1 if since else 0
            done = sum(n for label, n in self.calls[start:] if label == "reward")
            self.steps.append((len(rewards), done))
            self.calls.append(("observe", 0))
            return observe(archs, rewards)

        strategy.observe = observed

    def _hook(self, module, args):
        self.forwards.append((self._label, torch.is_grad_enabled(), module.training))

    def _wrap(self, child, name: str, label: str) -> None:
        method = getattr(child, name)

        def wrapped(*args, **kwargs):
            if self._label is not None:
                raise AssertionError(f"child.{name} called inside child.{self._label}")
            before = len(self.forwards)
            self._label = label
            try:
                return method(*args, **kwargs)
            finally:
                self._label = None
                self.calls.append((label, len(self.forwards) - before))

        setattr(child, name, wrapped)

    def check(self, child_steps: int, rewards: int) -> None:
        outside = [f for f in self.forwards if f[0] is None]
        assert not outside, f"{len(outside)} forwards of the network outside child.train_step / child.reward"
        train_calls = [n for label, n in self.calls if label == "train"]
        reward_calls = [n for label, n in self.calls if label == "reward"]
        assert len(train_calls) == child_steps, f"{len(train_calls)} child steps, expected {child_steps}"
        assert len(reward_calls) == rewards, f"{len(reward_calls)} child.reward calls for {rewards} rewards"
        assert set(train_calls) == {1}, f"forwards per child step: {train_calls}"
        assert set(reward_calls) == {1}, f"forwards per reward: {reward_calls}"
        train = [(grad, training) for label, grad, training in self.forwards if label == "train"]
        reward = [(grad, training) for label, grad, training in self.forwards if label == "reward"]
        assert train == [(True, True)] * child_steps, f"child steps' (grad, train mode): {train}"
        assert reward == [(False, False)] * rewards, f"rewards' (grad, train mode): {reward}"
        # per policy step (strategy.observe): as many reward forwards as rewards it learns from
        assert sum(n for n, _ in self.steps) == rewards, f"{self.steps}"
        assert all(given == done for given, done in self.steps), f"(rewards, reward forwards) per step: {self.steps}"

@pytest.mark.parametrize("alternate", ["epoch", "step"])
def test_cnn_search_policy_step_is_one_no_grad_forward_per_reward(alternate):
    dataset = make_pattern_dataset(n_train=96, n_test=16, size=8)
    config = tiny_search_config(epochs=2, batch_size=24, policy_batch_size=8, alternate=alternate)
    search = make_search("digits", dataset, config, DataConfig(train_portion=0.75), cpu_runtime(0), None, (), {})
    log = ForwardLog(search)
    result = search.run()
    child_steps, policy_steps = search.child.steps_per_epoch
    assert (child_steps, policy_steps) == (3, 3)
    rewards = sum(int(r.metrics["reward_count"]) for r in result.history)
    assert rewards == 2 * policy_steps
    log.check(child_steps=2 * child_steps, rewards=rewards)
    assert len(log.steps) == rewards  # EDNAS: one REINFORCE step per reward


def test_rnn_search_policy_step_is_one_no_grad_forward_per_reward():
    corpus = make_synthetic_corpus(20, 240, 120, 40, seed=0)
    config = dataclasses.replace(RNNSearchConfig(), epochs=1, batch_size=4, policy_batch_size=4, bptt=10, emb=8,
                                 hidden=8, dropout=0.1, dropouth=0.1, dropoutx=0.1, dropouti=0.1)
    search = make_search("markov", corpus, config, DataConfig(), cpu_runtime(0), None, (), {})
    log = ForwardLog(search)
    result = search.run()
    child_steps, policy_steps = search.child.steps_per_epoch
    assert child_steps >= 3 and policy_steps >= 2
    assert int(result.history[0].metrics["reward_count"]) == policy_steps
    log.check(child_steps=child_steps, rewards=policy_steps)
