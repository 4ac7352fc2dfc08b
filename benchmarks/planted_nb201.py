"""Which strategies find a planted cell of the NAS-Bench-201 space, and in how many rewards:

    python -m benchmarks.planted_nb201 [--strategies ednas,rea,evnas,nao,enas,random] [--seeds 4] [--epochs 15]
                                       [--enas-steps N] [--set enas.lr=0.02 ...]

Each search is the real loop (ednas_core.search.EDNASSearch) with the task nb201's default settings
(ednas_core.config.nb201_search_defaults, what params.yaml's nb201.search holds) over a SyntheticChild whose reward
is the fraction of the 6 edges a cell shares with a planted one (1 for the planted cell, 5/6 for its nearest
neighbours), 2 child steps and 20 reward batches per epoch. For each strategy and seed it prints the rewards
spent, whether the strategy's final architecture is the planted cell, its reward, the first query that hit the
planted cell, the mean reward of 200 of the strategy's derive candidates, and the edge codes (0 = none, 1 + op in
NB201's order; edges 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) of the final and the planted cell. --set changes one
setting of a strategy's section (nb201.search.<strategy>.<key> in params.yaml), e.g. --set enas.lr=0.02;
--enas-steps N, ENAS's Adam steps per epoch (the task's default: 1 step of 20 samples; NAS-Bench-201's ENAS
baseline: 50), is --set enas.train_steps=N.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from typing import Sequence

import numpy as np
import torch
from ruamel.yaml import YAML, YAMLError

from ednas_core.config import NB201SearchConfig, RuntimeConfig, from_mapping, nb201_search_defaults
from ednas_core.knobs import ConfigError
from ednas_core.runtime import Runtime
from ednas_core.search import EDNASSearch
from ednas_core.spaces import NB201_SPACE, Architecture
from ednas_core.strategies import make_strategy
from ednas_core.synthetic import SyntheticChild, planted_architecture, planted_reward

CHILD_STEPS, REWARD_BATCHES = 2, 20


def with_settings(config: NB201SearchConfig, settings: Sequence[str]) -> NB201SearchConfig:
    """`config` with each 'STRATEGY.KEY=VALUE' of `settings` set, VALUE read as YAML 1.2 and checked as params.yaml's
    nb201.search.STRATEGY.KEY is (stages.common reads params.yaml so); a bad item stops with one line."""
    for item in settings:
        name, has_value, value = item.partition("=")
        section, _, key = name.partition(".")
        current = getattr(config, section, None)
        if not (has_value and key and dataclasses.is_dataclass(current)):
            raise SystemExit(f"planted_nb201: --set {item!r}: expected STRATEGY.KEY=VALUE, a setting of "
                             f"nb201.search.<strategy> (e.g. enas.lr=0.02)")
        try:
            mapping = {**dataclasses.asdict(current), key: YAML(typ="safe").load(value)}
            config = dataclasses.replace(config, **{section: from_mapping(type(current), mapping,
                                                                          f"nb201.search.{section}.")})
        except (ConfigError, YAMLError) as e:
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise SystemExit(f"planted_nb201: --set {item!r}: {reason}") from None
    return config


def codes(arch: Architecture) -> str:
    """The cell's six edge codes as one string (0 = none, 1 + op)."""
    return "".join(str(c) for c in NB201_SPACE.cell.edge_codes(arch["cell"]))


def planted_run(name: str, seed: int, epochs: int, base: NB201SearchConfig | None = None
                ) -> dict[str, float | int | bool | str | None]:
    """One search of strategy `name` against the cell planted by `seed`, with the settings of `base` (default:
    the task's, nb201_search_defaults)."""
    planted = planted_architecture(NB201_SPACE, seed=seed)
    reward = planted_reward(NB201_SPACE, planted)
    config = dataclasses.replace(base or nb201_search_defaults(), strategy=name, epochs=epochs)
    strategy = make_strategy(NB201_SPACE, config, seed)
    child = SyntheticChild(reward, CHILD_STEPS, REWARD_BATCHES, seed=seed)
    runtime = Runtime.from_config(RuntimeConfig(device="cpu", seed=seed))
    start = time.perf_counter()
    EDNASSearch(NB201_SPACE, child, strategy, config, runtime, None, []).run()
    final = strategy.final_architecture()
    candidates = strategy.derive_candidates(torch.Generator().manual_seed(0), 200)
    return {"rewards": len(child.scored), "found": final == planted, "final_reward": reward(final),
            "first_hit": next((i + 1 for i, a in enumerate(child.scored) if a == planted), None),
            "candidates_mean": float(np.mean([reward(a) for a in candidates])),
            "final_codes": codes(final), "planted_codes": codes(planted), "seconds": time.perf_counter() - start}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.planted_nb201", description=__doc__.split("\n\n")[0])
    parser.add_argument("--strategies", default="ednas,rea,evnas,nao,enas,random")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=15, help="search epochs of every strategy")
    parser.add_argument("--enas-steps", type=int, default=None, help="ENAS's Adam steps per epoch")
    parser.add_argument("--set", action="append", default=[], metavar="STRATEGY.KEY=VALUE",
                        help="a strategy setting (nb201.search.<strategy>.<key>), e.g. enas.lr=0.02; repeatable")
    args = parser.parse_args(argv)
    steps = [] if args.enas_steps is None else [f"enas.train_steps={args.enas_steps}"]
    base = with_settings(nb201_search_defaults(), args.set + steps)  # a bad setting stops here, before any search
    print(f"{'strategy':<9} {'seed':>4} {'rewards':>7} {'found':>5} {'final':>6} {'1st hit':>7} {'samples':>7} "
          f"{'cell':>6} {'planted':>7} {'s':>6}")
    for name in args.strategies.split(","):
        found = 0
        for seed in range(args.seeds):
            r = planted_run(name, seed, args.epochs, base)
            found += bool(r["found"])
            print(f"{name:<9} {seed:>4} {r['rewards']:>7} {str(r['found']):>5} {r['final_reward']:>6.3f} "
                  f"{str(r['first_hit'] or '-'):>7} {r['candidates_mean']:>7.3f} {r['final_codes']:>6} "
                  f"{r['planted_codes']:>7} {r['seconds']:>6.1f}", flush=True)
        print(f"{name}: the planted cell found by {found} of {args.seeds} seeds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
