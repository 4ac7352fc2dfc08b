"""Search strategies: how the architectures that the shared weights train on and that the rewards judge are
chosen. One algorithm per file, registered here by the name `search.strategy` takes:

- ednas.py  — EDNAS: decoupled structure/operation policy vectors, REINFORCE (the paper)
- random.py — uniform random sampling (the paper's baseline)
- enas.py   — ENAS micro search: an LSTM controller sampling cells autoregressively, REINFORCE
- evnas.py  — EvNAS: a genetic algorithm over DARTS-style architecture parameters on the shared weights
- nao.py    — NAO-WS: encoder-predictor-decoder, gradient ascent in the architecture embedding, a pool
- rea.py    — regularized evolution (Real et al. 2019): NAS-Bench-201's tabular reference

Adding a strategy: one file with a Strategy subclass (and its settings dataclass), a line below, a field in the
search sections of ednas_core/config.py and its section in params.yaml.

base.py holds the interface (Strategy) the search loop and derive use, and the helpers strategies share.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ..spaces import SearchSpace
from .base import Strategy
from .ednas import EDNASStrategy
from .enas import ENASStrategy
from .evnas import EvNASStrategy
from .nao import NAOStrategy
from .random import RandomStrategy
from .rea import REAStrategy

STRATEGIES: dict[str, type[Strategy]] = {
    s.name: s for s in (EDNASStrategy, RandomStrategy, ENASStrategy, EvNASStrategy, NAOStrategy, REAStrategy)
}
STRATEGY_NAMES: tuple[str, ...] = tuple(STRATEGIES)


def make_strategy(space: SearchSpace, search_config: Any, seed: int) -> Strategy:
    """The strategy named by `search_config.strategy`, with its own settings section."""
    cls = STRATEGIES[search_config.strategy]
    return cls(space, cls.settings_from(search_config), seed)


def key_owners(key: str) -> tuple[str, ...]:
    """The strategies that alone read `key`, a key of a task's search section without its prefix: its own
    section's (`nao.epochs` -> nao), a key of the section proper that some strategies' settings read
    (`policy_lr` -> ednas; `baseline_decay` -> ednas, random); () for what the search itself reads (`lr`)."""
    head = key.split(".", 1)[0]
    if "." in key and head in STRATEGIES:
        return (head,)
    return tuple(name for name, cls in STRATEGIES.items() if key in cls.search_keys)


def strategy_settings(search_config: Any) -> dict[str, Any]:
    """The search section as a dict without the sections of the strategies it does not run: what determines
    a search (checkpoint fingerprint, tracked params)."""
    settings = dataclasses.asdict(search_config)
    for name in STRATEGIES:
        if name != search_config.strategy:
            settings.pop(name, None)
    return settings


__all__ = ["STRATEGIES", "STRATEGY_NAMES", "Strategy", "key_owners", "make_strategy", "strategy_settings"]
