"""Which strategies find a planted cell, and in how many rewards:

    python -m benchmarks.planted [--space nb201|cnn|rnn] [--strategies ednas,rea,evnas,nao,enas,random] [--seeds 4]
                                 [--epochs 15] [--enas-steps N] [--set enas.lr=0.02 ...]

Each search is the real loop (ednas_core.search.EDNASSearch) with the space's task's default settings (nb201:
ednas_core.config.nb201_search_defaults, which params.yaml's nb201.search repeats; cnn: the CIFAR-10 search
section's defaults, search; rnn: the PTB one's, ptb.search; all paper / published settings; tests/test_config.py
holds params.yaml equal to them) over a SyntheticChild whose reward is the share of
the planted cell's decisions an architecture makes (synthetic.planted_reward; NB201: of its 6 edge codes, so 5/6
for the planted cell's nearest neighbours), 2 child steps and 20 reward batches per epoch (a strategy that wants
more rewards an epoch, as ENAS and NAO do, cycles them). For each strategy and seed it prints the rewards spent,
whether the strategy's final architecture is the planted cell, its reward, the first query that hit the planted
cell, the mean reward of 200 of the strategy's derive candidates, and the final and the planted cell as their
token digits (strategies.base.to_tokens; NB201: the edge codes, 0 = none, 1 + op in NB201's order, edges 1<-0, 2<-0,
2<-1, 3<-0, 3<-1, 3<-2; CNN / RNN: input and op index of each edge, node by node, normal cell first). --set changes
one setting of a strategy's section (<search section>.<strategy>.<key> in params.yaml), e.g. --set enas.lr=0.02;
--enas-steps N, ENAS's Adam steps per epoch, is --set enas.train_steps=N.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from ruamel.yaml import YAML, YAMLError

from ednas_core.config import RNNSearchConfig, RuntimeConfig, SearchConfig, from_mapping, nb201_search_defaults
from ednas_core.knobs import ConfigError
from ednas_core.runtime import Runtime
from ednas_core.search import EDNASSearch
from ednas_core.spaces import CNN_SPACE, NB201_SPACE, RNN_SPACE, Architecture, SearchSpace
from ednas_core.strategies import make_strategy
from ednas_core.strategies.base import to_tokens
from ednas_core.synthetic import SyntheticChild, planted_architecture, planted_reward
from tools.nb201_study import parse_strategies
from tools.sweep import at_least

CHILD_STEPS, REWARD_BATCHES = 2, 20
# space name -> (the space, its task's default search settings, their section in params.yaml)
SPACES: dict[str, tuple[SearchSpace, Callable[[], Any], str]] = {
    "nb201": (NB201_SPACE, nb201_search_defaults, "nb201.search"),
    "cnn": (CNN_SPACE, SearchConfig, "search"),
    "rnn": (RNN_SPACE, RNNSearchConfig, "ptb.search"),
}


def with_settings(config: Any, settings: Sequence[str], section_name: str = "nb201.search") -> Any:
    """`config` (a search section) with each 'STRATEGY.KEY=VALUE' of `settings` set, VALUE read as YAML 1.2 and
    checked as params.yaml's <section_name>.STRATEGY.KEY is (stages.common reads params.yaml so); a bad item stops
    with one line."""
    for item in settings:
        name, has_value, value = item.partition("=")
        section, _, key = name.partition(".")
        current = getattr(config, section, None)
        if not (has_value and key and dataclasses.is_dataclass(current)):
            raise SystemExit(f"planted: --set {item!r}: expected STRATEGY.KEY=VALUE, a setting of "
                             f"{section_name}.<strategy> (e.g. enas.lr=0.02)")
        try:
            mapping = {**dataclasses.asdict(current), key: YAML(typ="safe").load(value)}
            config = dataclasses.replace(config, **{section: from_mapping(type(current), mapping,
                                                                          f"{section_name}.{section}.")})
        except (ConfigError, YAMLError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SystemExit(f"planted: --set {item!r}: {reason}") from None
    return config


def codes(space: SearchSpace, arch: Architecture) -> str:
    """The architecture's tokens as one string of digits (NB201: its six edge codes, 0 = none, 1 + op)."""
    return "".join(str(t) for t in to_tokens(space, arch))


def planted_run(name: str, seed: int, epochs: int, base: Any = None, space: str = "nb201"
                ) -> dict[str, float | int | bool | str | None]:
    """One search of strategy `name` against the cell of `space` (a SPACES name) planted by `seed`, with the
    settings of `base` (default: the space's task's)."""
    the_space, defaults, _ = SPACES[space]
    planted = planted_architecture(the_space, seed=seed)
    reward = planted_reward(the_space, planted)
    config = dataclasses.replace(base or defaults(), strategy=name, epochs=epochs)
    strategy = make_strategy(the_space, config, seed)
    child = SyntheticChild(reward, CHILD_STEPS, REWARD_BATCHES, seed=seed)
    runtime = Runtime.from_config(RuntimeConfig(device="cpu", seed=seed))
    start = time.perf_counter()
    EDNASSearch(the_space, child, strategy, config, runtime, None, []).run()
    final = strategy.final_architecture()
    candidates = strategy.derive_candidates(torch.Generator().manual_seed(0), 200)
    return {"rewards": len(child.scored), "found": final == planted, "final_reward": reward(final),
            "first_hit": next((i + 1 for i, a in enumerate(child.scored) if a == planted), None),
            "candidates_mean": float(np.mean([reward(a) for a in candidates])),
            "final_codes": codes(the_space, final), "planted_codes": codes(the_space, planted),
            "seconds": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.planted", description=__doc__.split("\n\n")[0])
    parser.add_argument("--space", choices=tuple(SPACES), default="nb201",
                        help="the cell space, searched with its task's default settings (default nb201)")
    parser.add_argument("--strategies", default="ednas,rea,evnas,nao,enas,random")
    parser.add_argument("--seeds", type=at_least(1), default=4)
    parser.add_argument("--epochs", type=at_least(1), default=15, help="search epochs of every strategy")
    parser.add_argument("--enas-steps", type=at_least(1), default=None, help="ENAS's Adam steps per epoch")
    parser.add_argument("--set", action="append", default=[], metavar="STRATEGY.KEY=VALUE",
                        help="a strategy setting (<search section>.<strategy>.<key>), e.g. enas.lr=0.02; repeatable")
    args = parser.parse_args(argv)
    try:
        names = parse_strategies(args.strategies)
    except ConfigError as e:
        parser.error(str(e))
    steps = [] if args.enas_steps is None else [f"enas.train_steps={args.enas_steps}"]
    _, defaults, section_name = SPACES[args.space]
    base = with_settings(defaults(), args.set + steps, section_name)  # a bad setting stops here, before any search
    print(f"{'strategy':<9} {'seed':>4} {'rewards':>7} {'found':>5} {'final':>6} {'1st hit':>7} {'samples':>7} "
          f"{'s':>6} {'cell':>6} {'planted':>7}")
    for name in names:
        found = 0
        for seed in range(args.seeds):
            r = planted_run(name, seed, args.epochs, base, args.space)
            found += bool(r["found"])
            print(f"{name:<9} {seed:>4} {r['rewards']:>7} {str(r['found']):>5} {r['final_reward']:>6.3f} "
                  f"{str(r['first_hit'] or '-'):>7} {r['candidates_mean']:>7.3f} {r['seconds']:>6.1f} "
                  f"{r['final_codes']:>6} {r['planted_codes']:>7}", flush=True)
        print(f"{name}: the planted cell found by {found} of {args.seeds} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
