"""What NAO-WS's controller training costs a search whose child keeps the host busy or idle, with the search waiting
for each round (search.nao.overlap_epochs 0, NAO-WS's order) and with the round overlapping the child's next epochs
(overlap_epochs K, the EPD on the CPU in a background thread).

The real search loop (EDNASSearch) runs NAO at its published sizes (CIFAR-10 space, a pool of 1000, the published
EPD) over a child whose steps cost wall time instead of a network: `sleep` (the host waits for a device that does
the work: the best case for a background thread) or `dispatch` (the host busy issuing tiny torch operations the
whole step, as a search loop bound by launching a GPU's kernels is: the background thread competes with it for the
interpreter and the cores). A child epoch lasts --child-epoch-s (default 21 s: 313 steps of the 67 ms an H200 took
a CIFAR-10 search step, README "Benchmarks and speed"). Both that epoch and the EPD's passes are divided by --scale
(default 10: 2.1 s epochs, 100 passes a round), which keeps their ratio, so the measurement takes minutes.

One round is measured: it scores the pool at the end of epoch K+1 (update_every K+2) and, overlapped, its new pool
is adopted at the start of epoch 2K+2, the search's last. Reported per load: the round's EPD time
(`<load>_epd_s`), the part the search waited for (`<load>_{blocking,overlap}_wait_s`), the seconds the search took
beyond its child's epochs (`<load>_{blocking,overlap}_added_s`: waiting, and a child slowed by the thread), the
child's slowdown during the overlap (`<load>_overlap_child_slowdown`), and the added seconds as a share of a search
epoch over NAO-WS's round interval (`<load>_{blocking,overlap}_share_of_epoch`: added / (update_every x epoch +
added), update_every 30 as NAO-WS's CIFAR-10 search).

    python -m benchmarks.nao_overlap [--overlap K (16)] [--scale S] [--child-epoch-s T] [--load sleep,dispatch]
                                     [--threads N] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ednas_core.config import RuntimeConfig, SearchConfig
from ednas_core.runtime import Runtime
from ednas_core.search import EDNASSearch
from ednas_core.spaces import CNN_SPACE
from ednas_core.strategies import make_strategy
from ednas_core.synthetic import SyntheticChild, planted_architecture, planted_reward
from tools.sweep import at_least

CIFAR_STEPS = (math.ceil(0.8 * 50_000 / 128), math.ceil(0.2 * 50_000 / 128))  # (child, policy) batches an epoch
LOADS = ("sleep", "dispatch")


class TimedChild(SyntheticChild):
    """A SyntheticChild whose training step lasts `step_s` seconds of wall time: asleep, or dispatching tiny torch
    operations (each releases the interpreter lock inside torch, as a GPU search loop's launches do)."""

    def __init__(self, step_s: float, load: str, child_steps: int, policy_batches: int):
        space = CNN_SPACE
        super().__init__(planted_reward(space, planted_architecture(space)), child_steps, policy_batches)
        if load not in LOADS:
            raise ValueError(f"load: got {load!r}; expected one of {', '.join(LOADS)}")
        self.step_s, self.load = step_s, load
        self._scratch = torch.zeros(1)

    def train_step(self, arch: Any, batch: int) -> None:
        super().train_step(arch, batch)
        if self.load == "sleep":
            time.sleep(self.step_s)
            return
        end = time.perf_counter() + self.step_s
        while time.perf_counter() < end:
            self._scratch.add_(1.0)


def one_round(overlap: int, load: str, scale: float, child_epoch_s: float, epd_passes: int) -> dict[str, float]:
    """A search of 2 * max(overlap, 1) + 3 epochs with one NAO round (see the module's docstring)."""
    k = max(overlap, 1)
    base = SearchConfig()
    nao = dataclasses.replace(base.nao, update_every=k + 2, overlap_epochs=overlap, epochs=epd_passes)
    config = dataclasses.replace(base, strategy="nao", epochs=2 * k + 3, nao=nao)
    child_steps, policy_batches = CIFAR_STEPS
    step_s = child_epoch_s / scale / child_steps
    child = TimedChild(step_s, load, child_steps, policy_batches)
    strategy = make_strategy(CNN_SPACE, config, seed=0)
    search = EDNASSearch(CNN_SPACE, child, strategy, config, Runtime.from_config(RuntimeConfig(device="cpu", seed=0)),
                         None)
    start = time.perf_counter()
    history = search.run().history
    wall = time.perf_counter() - start
    adopted = next(r.metrics for r in history if math.isfinite(r.metrics["epd_time_s"]))
    nominal = child_steps * step_s
    lag = [r.metrics["child_time_s"] for r in history[k + 2 : k + 2 + overlap]]
    return {"epd_s": adopted["epd_time_s"], "wait_s": adopted["epd_wait_time_s"],
            "added_s": wall - len(history) * nominal, "epoch_s": nominal,
            "child_slowdown": (sum(lag) / (len(lag) * nominal) - 1.0) if lag else math.nan}


def measure(overlap: int, scale: float, child_epoch_s: float, loads: Sequence[str]) -> dict[str, float]:
    passes = max(1, round(SearchConfig().nao.epochs / scale))
    interval = SearchConfig().nao.update_every
    out: dict[str, float] = {"overlap_epochs": overlap, "scale": scale, "child_epoch_s": child_epoch_s,
                             "epd_passes": passes, "cpu_threads": torch.get_num_threads()}
    for load in loads:
        for mode, k in (("blocking", 0), ("overlap", overlap)):
            m = one_round(k, load, scale, child_epoch_s, passes)
            out[f"{load}_{mode}_wait_s"] = m["wait_s"]
            out[f"{load}_{mode}_added_s"] = m["added_s"]
            out[f"{load}_{mode}_share_of_epoch"] = m["added_s"] / (interval * m["epoch_s"] + m["added_s"])
            if mode == "overlap":
                out[f"{load}_epd_s"] = m["epd_s"]
                out[f"{load}_overlap_child_slowdown"] = m["child_slowdown"]
            print(f"nao_overlap: {load:8s} {mode:8s} EPD {m['epd_s']:7.2f} s, waited {m['wait_s']:7.2f} s, "
                  f"search +{m['added_s']:7.2f} s over its child's epochs", flush=True)
    return out


def loads_of(text: str) -> tuple[str, ...]:
    """--load: a comma-separated subset of LOADS."""
    loads = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in loads if x not in LOADS]
    if bad or not loads:
        raise argparse.ArgumentTypeError(f"{text!r}: expected {', '.join(LOADS)} or both, comma-separated")
    return loads


def main(argv: Sequence[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nao_overlap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlap", type=at_least(1), default=16,
                        help="search.nao.overlap_epochs to measure (default 16)")
    parser.add_argument("--scale", type=at_least(1.0, float), default=10.0,
                        help="divides the child's epoch and the EPD's 1000 passes (default 10)")
    parser.add_argument("--child-epoch-s", type=at_least(0.001, float), default=21.0,
                        help="the child's epoch before scaling, seconds (default 21: an H200's CIFAR-10 child phase)")
    parser.add_argument("--load", type=loads_of, default=LOADS, help="sleep, dispatch or both (default)")
    parser.add_argument("--threads", type=at_least(1), default=None, help="torch's CPU threads (default: torch's)")
    parser.add_argument("--out", type=Path, default=None, help="folder for nao_overlap.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = measure(args.overlap, args.scale, args.child_epoch_s, args.load)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "nao_overlap.json").write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
