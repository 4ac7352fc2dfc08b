"""The real search loop (ednas_core.search.EDNASSearch) driving a strategy against a child with no network
(ednas_core.synthetic.SyntheticChild) whose reward is a planted function of the architecture."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Iterable

from ednas_core.epochs import EpochCallback
from ednas_core.search import EDNASSearch
from ednas_core.strategies import Strategy
from ednas_core.synthetic import Reward, SyntheticChild, planted_architecture, planted_reward
from helpers import cpu_runtime, tiny_search_config

__all__ = ["SyntheticChild", "planted_architecture", "planted_reward", "synthetic_search"]


def synthetic_search(strategy: Strategy, reward: Reward, epochs: int, *, child_steps: int = 10,
                     policy_batches: int = 20, noise: float = 0.0, seed: int = 0, alternate: str = "epoch",
                     checkpoint: Path | None = None, callbacks: Iterable[EpochCallback] = ()) -> EDNASSearch:
    """The real search loop over `strategy` and a SyntheticChild; call .run() on it."""
    config = dataclasses.replace(tiny_search_config(), epochs=epochs, alternate=alternate, strategy=strategy.name)
    child = SyntheticChild(reward, child_steps, policy_batches, noise, seed)
    return EDNASSearch(strategy.space, child, strategy, config, cpu_runtime(seed), checkpoint, callbacks,
                       {"synthetic": True})
