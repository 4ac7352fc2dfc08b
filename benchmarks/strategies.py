"""The host-side cost of every search strategy (sampling, learning, decoding) per search epoch, at the paper's
sizes: the real search loop (ednas_core.search.EDNASSearch) over a SyntheticChild, whose steps cost nothing, so
an epoch's time is the strategy's alone. Each strategy runs with its config defaults (the published ones, which
params.yaml repeats: tests/test_config.py holds the two equal) for a whole period of its schedule (NAO:
`update_every` epochs, one round of scoring and controller training), and the cost is reported per epoch,
amortised over the period, and for the most expensive epoch.

Beside the child: when benchmarks/run.py's search_epoch section measured the child's epoch on the same device,
each strategy's share of a search epoch is host / (child phase + its rewards x one reward forward + host).
The issue's budget is a 5% share at most.

Alone, beside an earlier benchmarks.run result (its search_epoch section, e.g. measured on a GPU):

    python -m benchmarks.strategies [--search-epoch RESULT.json] [--only enas,nao] [--nao-epochs N] [--out DIR]
                                    [--device cuda --nao-device search] [--threads N] [--quick]

--nao-epochs N sets NAO's controller passes per round (published: 1000; the round's cost is nearly all those
passes, so a tenth of them measures a tenth of the round in a tenth of the time). The EPD's training is timed on
its own (nao_{cnn,rnn}_epd_s_per_pass: its wall time over the passes it made, synchronised with the device), and
the keys nao_{cnn,rnn}_host_s_per_epoch_projected (and nao_cnn_share_of_epoch_projected) replace the N passes by
the settings' own (published: 1000) at that cost a pass (the passes are alike; scoring, gradient ascent and
decoding do not depend on them), so a GPU box with little time measures NAO in seconds instead of minutes.
--device is the search's device (default cpu): a strategy that can compute there does so when its settings ask
(--nao-device search: NAO's EPD, search.nao.device); the others stay on the CPU as in a real search. --threads N
sets torch's CPU threads (recorded as cpu_threads)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ednas_core.config import RNNSearchConfig, RuntimeConfig, SearchConfig
from ednas_core.epochs import EpochCallback
from ednas_core.search import EDNASSearch
from ednas_core.spaces import CNN_SPACE, RNN_SPACE, SearchSpace
from ednas_core.strategies import STRATEGIES, make_strategy
from ednas_core.synthetic import SyntheticChild, planted_architecture, planted_reward
from ednas_core.knobs import ConfigError
from ednas_core.runtime import Runtime, resolve_device
from tools.sweep import at_least

# PTB at the paper's search sizes: 929,589 training and 73,760 validation tokens, batch 256, bptt 35
PTB_STEPS = (math.ceil(929_589 / 256 / 35), math.ceil(73_760 / 256 / 35))
# --quick: every strategy at toy sizes (CI smoke test of this section)
QUICK = {
    "enas": {"train_steps": 2, "num_aggregate": 3},
    "evnas": {"population_size": 6, "tournament_size": 2},
    "nao": {"update_every": 2, "seed_architectures": 20, "new_architectures": 8, "random_architectures": 2,
            "top_k": 5, "epochs": 2, "batch_size": 10, "max_step_size": 5},
}


def cifar_steps(sizes: Any) -> tuple[int, int]:
    """(child batches, policy batches) of a CIFAR-10 search epoch at `sizes` (benchmarks.run.Sizes): 80% of the
    training images train the shared weights, 20% score the architectures."""
    return math.ceil(0.8 * sizes.images / sizes.batch), math.ceil(0.2 * sizes.images / sizes.batch)


def period_of(search_config: Any) -> int:
    """Epochs over which a strategy's cost repeats (NAO scores its pool and trains its controller once every
    update_every epochs; the others do the same work every epoch)."""
    return search_config.nao.update_every if search_config.strategy == "nao" else 1


def _config(base: Any, name: str, quick: bool, nao_epochs: int | None = None, nao_device: str | None = None) -> Any:
    config = dataclasses.replace(base, strategy=name)
    if quick and name in QUICK:
        config = dataclasses.replace(config, **{name: dataclasses.replace(getattr(config, name), **QUICK[name])})
    if name == "nao" and nao_epochs is not None:
        config = dataclasses.replace(config, nao=dataclasses.replace(config.nao, epochs=nao_epochs))
    if name == "nao" and nao_device is not None:
        config = dataclasses.replace(config, nao=dataclasses.replace(config.nao, device=nao_device))
    return config


def host_cost(space: SearchSpace, config: Any, child_steps: int, policy_batches: int,
              device: str = "cpu") -> dict[str, float]:
    """Runs one period of the strategy's schedule over a SyntheticChild, the search on `device`; seconds per
    epoch (mean and max) and rewards per epoch."""
    epochs = period_of(config)
    config = dataclasses.replace(config, epochs=epochs)
    strategy = make_strategy(space, config, seed=0)
    child = SyntheticChild(planted_reward(space, planted_architecture(space)), child_steps, policy_batches)
    runtime = Runtime.from_config(RuntimeConfig(device=device, seed=0))
    clock = _EpochClock()
    search = EDNASSearch(space, child, strategy, config, runtime, None, [clock])
    epd = _EPDClock.attach(strategy)
    clock.start()
    history = search.run().history
    out = {"host_s_per_epoch": sum(clock.seconds) / epochs, "max_epoch_s": max(clock.seconds),
           "rewards_per_epoch": sum(r.metrics["reward_count"] for r in history) / epochs}
    if epd is not None and epd.passes:
        out |= {"epd_s_per_pass": epd.seconds / epd.passes, "epd_passes_per_epoch": epd.passes / epochs}
    return out


class _EpochClock(EpochCallback):
    """Wall time of every whole epoch, end-of-epoch work (probabilities, statistics) included."""

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self._last = 0.0

    def start(self) -> None:
        self._last = time.perf_counter()

    def on_epoch_end(self, report: Any) -> None:
        now = time.perf_counter()
        self.seconds.append(now - self._last)
        self._last = now


class _EPDClock:
    """Wall time and passes of every call of a strategy's controller training (NAO's train_epd, which reads its
    losses back at the end, so that its time includes the device's work)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.passes = 0

    @classmethod
    def attach(cls, strategy: Any) -> "_EPDClock | None":
        train = getattr(strategy, "train_epd", None)
        if train is None:
            return None
        clock = cls()

        def timed(pool: Any, targets: Any, epochs: int, generator: Any) -> Any:
            start = time.perf_counter()
            result = train(pool, targets, epochs, generator)
            clock.seconds += time.perf_counter() - start
            clock.passes += epochs
            return result

        strategy.train_epd = timed
        return clock


def bench_strategies(sizes: Any, search_epoch: dict[str, float] | None = None, names: Sequence[str] | None = None,
                     nao_epochs: int | None = None, device: str = "cpu",
                     nao_device: str | None = None) -> dict[str, float]:
    """Every registered strategy (or `names`) on the CNN space (CIFAR-10 split of `sizes`) and the RNN space
    (PTB), the search on `device`; NAO with `nao_epochs` controller passes per round and its EPD on
    `nao_device` (search.nao.device) when given."""
    quick = sizes.name == "quick"
    child_steps, policy_batches = cifar_steps(sizes)
    ptb_steps = (4, 2) if quick else PTB_STEPS
    out: dict[str, float] = {}
    for name in STRATEGIES if names is None else names:
        cnn = host_cost(CNN_SPACE, _config(SearchConfig(), name, quick, nao_epochs, nao_device), child_steps,
                        policy_batches, device)
        rnn = host_cost(RNN_SPACE, _config(RNNSearchConfig(), name, quick, nao_epochs, nao_device), *ptb_steps,
                        device=device)
        for key, value in cnn.items():
            out[f"{name}_cnn_{key}"] = value
        for key, value in rnn.items():
            out[f"{name}_rnn_{key}"] = value
        if name == "nao" and nao_epochs is not None:  # projected to the settings' own passes
            for key, base, measured in (("cnn", SearchConfig(), cnn), ("rnn", RNNSearchConfig(), rnn)):
                out[f"{name}_{key}_host_s_per_epoch_projected"] = projected(
                    measured["host_s_per_epoch"], measured.get("epd_s_per_pass", 0.0),
                    measured.get("epd_passes_per_epoch", 0.0) / nao_epochs, nao_epochs,
                    _config(base, name, quick).nao.epochs)
        if search_epoch:  # the child's epoch on the measured device: child phase + this strategy's rewards
            for suffix in ("", "_projected"):
                host = out.get(f"{name}_cnn_host_s_per_epoch{suffix}")
                if host is not None:
                    out[f"{name}_cnn_share_of_epoch{suffix}"] = share_of_epoch(search_epoch, cnn["rewards_per_epoch"],
                                                                               host)
    return out


def projected(host_s_per_epoch: float, s_per_pass: float, rounds_per_epoch: float, passes: int,
              target: int) -> float:
    """An epoch's host seconds with `target` controller passes a round instead of the `passes` it was measured
    with: the measured passes' time (s_per_pass each, rounds_per_epoch rounds) replaced by the target's."""
    return host_s_per_epoch + rounds_per_epoch * (target - passes) * s_per_pass


def share_of_epoch(search_epoch: dict[str, float], rewards_per_epoch: float, host_s: float) -> float:
    """A strategy's host-side seconds as a share of a search epoch on the measured device: the child phase, the
    strategy's rewards (one reward forward each) and the host-side seconds."""
    reward_s = search_epoch["policy_step_ms"] / 1000.0
    return host_s / (search_epoch["child_s"] + rewards_per_epoch * reward_s + host_s)


def bench_nao_epd_on_device(sizes: Any, device: str, search_epoch: dict[str, float] | None = None
                            ) -> dict[str, float]:
    """NAO with its EPD on the search's `device` (search.nao.device: search), keys nao_epd_on_device_*; nothing
    on a CPU search (the strategies section measures that already)."""
    if str(device).startswith("cpu"):
        return {}
    measured = bench_strategies(sizes, search_epoch, ["nao"], device=str(device), nao_device="search")
    return {k.replace("nao_", "nao_epd_on_device_", 1): v for k, v in measured.items()}


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.strategies", description=__doc__.split("\n\n")[0])
    parser.add_argument("--search-epoch", metavar="RESULT.json", default=None,
                        help="a benchmarks.run result with a search_epoch section: each strategy's share of that epoch")
    parser.add_argument("--only", default=",".join(STRATEGIES), help="strategies, comma-separated")
    parser.add_argument("--nao-epochs", type=int, default=None, help="NAO's controller passes per round")
    parser.add_argument("--device", default="cpu", help="the search's device: cpu (default), cuda, cuda:N")
    parser.add_argument("--nao-device", choices=("cpu", "search"), default=None,
                        help="search.nao.device: where NAO's EPD computes (default: params.yaml's, cpu)")
    parser.add_argument("--threads", type=at_least(1), default=None,
                        help="torch CPU threads (default: torch's own, one a physical core); NAO's CPU EPD scales "
                             "with them")
    parser.add_argument("--out", default=None, help="folder for the JSON result")
    parser.add_argument("--quick", action="store_true", help="toy sizes and settings (a smoke test)")
    args = parser.parse_args(argv)
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        parser.error(f"--only: unknown strategy {unknown[0]!r}; known: {', '.join(STRATEGIES)}" if unknown
                     else "--only: no strategy given")
    if args.nao_epochs is not None and args.nao_epochs < 1:
        parser.error(f"--nao-epochs must be at least 1, got {args.nao_epochs}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    search_epoch, device = None, "cpu (host-side cost only)"
    if args.search_epoch:
        try:
            measured = json.loads(Path(args.search_epoch).read_text())
            search_epoch, device = measured["search_epoch"], measured["device"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            parser.error(f"--search-epoch {args.search_epoch}: not a benchmarks.run result with a search_epoch "
                         f"section ({type(e).__name__}: {e})")
    from benchmarks.run import PAPER, QUICK as QUICK_SIZES  # run.py imports this module: imported here, not above

    try:
        search_device = str(resolve_device(args.device))
    except ConfigError as e:
        parser.error(f"--device: {e}")
    results: dict[str, Any] = {"search_epoch_device": device, "nao_epochs": args.nao_epochs,
                               "search_device": search_device, "nao_device": args.nao_device or "cpu",
                               "cpu_threads": torch.get_num_threads(),
                               "strategies": bench_strategies(QUICK_SIZES if args.quick else PAPER, search_epoch,
                                                              names, args.nao_epochs, search_device,
                                                              args.nao_device)}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"strategies-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2) + "\n")
    print(f"search epoch of: {device}; NAO controller passes per round: {args.nao_epochs or 'published'}; "
          f"strategies' search on {search_device}, NAO's EPD on {results['nao_device']}; "
          f"{results['cpu_threads']} CPU threads")
    for key, value in results["strategies"].items():
        print(f"  {key:32s} {value:12.4g}")
    return results


if __name__ == "__main__":
    main()
