"""Random search, the paper's own baseline: every architecture drawn uniformly (structure and operations), never
learning; the rewards are still measured and tracked (with the same EMA baseline as EDNAS) so that its curves
compare with a learning strategy's. Derive scores uniform samples like EDNAS's.

The distribution is a PolicyVectors whose probabilities make every cell equally likely: EDNAS's starting policy
without its noise (ednas.uniform_cell_logits). On the CNN and RNN cells every node selects the same number of
edges, so that is all-zero logits (uniform combinations, uniform ops). On an any-subset cell (NAS-Bench-201)
uniform subsets would favour sparse cells (the empty cell 1/64 instead of 1/15,625), so a node's subset c gets
the logit |c| * log(n_ops): P(c) = n_ops^|c| / (n_ops + 1)^i and, with its
edges' uniform ops, P(cell) = (n_ops + 1)^-(edges of the DAG), the benchmark's random search (each edge one of
its 5 operations uniformly: AutoDL-Projects, models/cell_searchs/search_model_random.py random_genotype). Its
probabilities() are the exact marginals of that distribution and log_prob is -6 log 5 for every NB201 cell."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ..spaces import Architecture, SearchSpace
from .base import Strategy, check_rewards
from .ednas import EMABaseline, PolicyVectors


def uniform_policy(space: SearchSpace) -> PolicyVectors:
    """PolicyVectors under which every cell of `space` is equally likely (see the module docstring)."""
    return PolicyVectors(space, init_std=0.0)  # exactly the start EDNAS's policy is drawn around


@dataclass(frozen=True)
class RandomSettings:
    baseline_decay: float


class RandomStrategy(Strategy):
    name = "random"
    distribution_title = "Random search: the uniform distribution it samples"
    search_keys = ("baseline_decay",)  # the tracked moving average of the reward only
    answer_title = ""  # final_architecture: the uniform distribution's argmax, the same cell whatever was scored

    def __init__(self, space: SearchSpace, settings: RandomSettings, seed: int):
        super().__init__(space, settings, seed)
        self.uniform = uniform_policy(space)  # every cell equally likely: its probabilities and log P(m)
        self.baseline = EMABaseline(settings.baseline_decay)

    @classmethod
    def settings_from(cls, search_config: Any) -> RandomSettings:
        return RandomSettings(baseline_decay=search_config.baseline_decay)

    def train_architecture(self, generator: torch.Generator) -> Architecture:
        return self.uniform.sample(generator)

    def propose(self, generator: torch.Generator, limit: int) -> list[Architecture]:
        return [self.uniform.sample(generator)]

    def observe(self, archs: list[Architecture], rewards: list[float]) -> None:
        check_rewards(archs, rewards)
        for reward in rewards:
            self.baseline.update(reward)

    def epoch_statistics(self) -> dict[str, float]:
        return {"baseline": self.baseline.value}

    def probabilities(self) -> dict[str, np.ndarray]:
        return self.uniform.probabilities()

    def final_architecture(self) -> Architecture:
        return self.uniform.argmax()

    def derive_candidates(self, generator: torch.Generator, samples: int) -> list[Architecture]:
        return [self.uniform.sample(generator) for _ in range(samples)]

    def log_prob(self, arch: Architecture) -> float:
        with torch.no_grad():
            return float(self.uniform.log_prob(arch))

    def state_dict(self) -> dict:
        return {"baseline": self.baseline.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.baseline.load_state_dict(state["baseline"])
