"""What NAO-WS's controller training costs a search, with the search waiting for each round (search.nao.overlap_epochs
0, NAO-WS's order) and with the round overlapping the child's next epochs (overlap_epochs K, the EPD on the CPU in a
background thread).

The real search loop (EDNASSearch) runs NAO at its published sizes (CIFAR-10 space, a pool of 1000, the published
EPD) over one of three children (--load):

    sleep     steps that cost wall time asleep: a host that waits for a device doing the work (the best case for a
              background thread)
    dispatch  steps that keep the host busy issuing tiny torch operations, as a search loop bound by launching a
              GPU's kernels is (the thread competes with it for the interpreter and the cores)
    real      the CNN search's own weight-sharing child at the paper's sizes (8 cells, 16 channels, batch 128) on
              --device, on random CIFAR-shaped images (benchmarks.run's), so a GPU box measures its own search

The timed children's epoch lasts --child-epoch-s (default 21 s: 313 steps of the 67 ms an H200 took a CIFAR-10
search step, README "Benchmarks and speed"); the real child's epoch has 313 steps. --scale (default 10) divides
those epochs' steps or time and the EPD's 1000 passes alike, which keeps their ratio, so the measurement takes
minutes (the pool's 1000 rewards are not scaled: a real child scores them all, the same in both orders).

One round is measured: it scores the pool at the end of epoch K+1 (update_every K+2) and, overlapped, its new pool
is adopted at the start of epoch 2K+2, the search's last. Per child, from the search's own per-epoch metrics: the
round's EPD time (`<load>_epd_s`), the part the search waited for (`<load>_{blocking,overlap}_wait_s`), the child's
slowdown during the overlap (`<load>_overlap_child_slowdown`: its epochs against the median epoch before the
round), the seconds the round added to the search (`<load>_{blocking,overlap}_added_s`: the wait plus that
slowdown) and their share of a search epoch over NAO-WS's round interval (`<load>_{blocking,overlap}_share_of_epoch`:
added / (update_every x epoch + added), update_every 30 as NAO-WS's CIFAR-10 search).

    python -m benchmarks.nao_overlap [--overlap K (16)] [--scale S (10)] [--child-epoch-s T] [--load sleep,dispatch]
                                     [--device cuda] [--threads N] [--epd-threads N] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from ednas_core.child_cnn import cnn_search
from ednas_core.config import DataConfig, RuntimeConfig, SearchConfig
from ednas_core.runtime import Runtime
from ednas_core.search import EDNASSearch
from ednas_core.spaces import CNN_SPACE
from ednas_core.strategies import make_strategy
from ednas_core.synthetic import SyntheticChild, planted_architecture, planted_reward
from tools.sweep import at_least

from .run import PAPER, QUICK, Sizes, synthetic_cifar
from .strategies import cifar_steps

CIFAR_STEPS = cifar_steps(PAPER)  # (child, policy) batches of a CIFAR-10 search epoch at the paper's sizes
EPD_THREADS = SearchConfig().nao.overlap_threads  # search.nao.overlap_threads' default
LOADS = ("sleep", "dispatch", "real")


class TimedChild(SyntheticChild):
    """A SyntheticChild whose training step lasts `step_s` seconds of wall time: asleep, or dispatching tiny torch
    operations (each releases the interpreter lock inside torch, as a GPU search loop's launches do)."""

    def __init__(self, step_s: float, load: str, child_steps: int, policy_batches: int):
        space = CNN_SPACE
        super().__init__(planted_reward(space, planted_architecture(space)), child_steps, policy_batches)
        if load not in ("sleep", "dispatch"):
            raise ValueError(f"load: got {load!r}; expected sleep or dispatch")
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


def nao_search_config(k: int, overlap: int, passes: int, sizes: Sizes = PAPER, epd_threads: int = EPD_THREADS
                      ) -> SearchConfig:
    """NAO's published settings with one round at epoch k+1 of 2k+3 epochs, `passes` EPD passes and
    overlap_epochs `overlap` (0 or k), the child at `sizes`, the background EPD on `epd_threads` torch threads."""
    base = SearchConfig(batch_size=sizes.batch, policy_batch_size=sizes.batch, layers=sizes.search_layers,
                        init_channels=sizes.search_channels)
    nao = dataclasses.replace(base.nao, update_every=k + 2, overlap_epochs=overlap, epochs=passes,
                              overlap_threads=epd_threads)
    return dataclasses.replace(base, strategy="nao", epochs=2 * k + 3, nao=nao)


def timed_search(config: SearchConfig, load: str, step_s: float) -> EDNASSearch:
    child = TimedChild(step_s, load, *CIFAR_STEPS)
    return EDNASSearch(CNN_SPACE, child, make_strategy(CNN_SPACE, config, seed=0), config,
                       Runtime.from_config(RuntimeConfig(device="cpu", seed=0)), None)


def real_search(config: SearchConfig, sizes: Sizes, child_steps: int, device: str) -> EDNASSearch:
    """The CNN search's own child on random CIFAR-shaped images, `child_steps` training batches an epoch."""
    train = DataConfig().train_portion
    images = math.ceil(child_steps * sizes.batch / train)
    data = synthetic_cifar(dataclasses.replace(sizes, images=images))
    return cnn_search(data, config, DataConfig(), Runtime.from_config(RuntimeConfig(device=device, seed=0)), None)


def measure_round(search: EDNASSearch, k: int, overlap: int, interval: int) -> dict[str, float]:
    """Runs the search (nao_search_config's schedule for k, overlap_epochs `overlap`); the round's numbers from its
    epochs' metrics (see the module's docstring)."""
    history = search.run().history
    metrics = [r.metrics for r in history]
    adopted = next(m for m in metrics if math.isfinite(m["epd_time_s"]))
    before = [m["child_time_s"] for m in metrics[1 : k + 2]]  # epoch 0 warms up (allocator, cuDNN's choices)
    nominal = statistics.median(before)
    lag = [m["child_time_s"] for m in metrics[k + 2 : k + 2 + overlap]]
    slowed = sum(t - nominal for t in lag)
    added = adopted["epd_wait_time_s"] + slowed
    return {"epd_s": adopted["epd_time_s"], "wait_s": adopted["epd_wait_time_s"], "epoch_s": nominal,
            "added_s": added, "share_of_epoch": added / (interval * nominal + added),
            "child_slowdown": slowed / (len(lag) * nominal) if lag else math.nan}


def measure(overlap: int, scale: float, child_epoch_s: float, loads: Sequence[str], device: str = "cpu",
            sizes: Sizes = PAPER, epd_threads: int = EPD_THREADS) -> dict[str, float]:
    passes = max(1, round(SearchConfig().nao.epochs / scale))
    interval = SearchConfig().nao.update_every
    child_steps = max(1, round(CIFAR_STEPS[0] / scale))
    out: dict[str, float] = {"overlap_epochs": overlap, "scale": scale, "child_epoch_s": child_epoch_s,
                             "epd_passes": passes, "cpu_threads": torch.get_num_threads(), "epd_threads": epd_threads}
    for load in loads:
        for mode, setting in (("blocking", 0), ("overlap", overlap)):  # the same schedule, overlap_epochs 0 or K
            config = nao_search_config(overlap, setting, passes, sizes, epd_threads)
            search = (real_search(config, sizes, child_steps, device) if load == "real"
                      else timed_search(config, load, child_epoch_s / scale / CIFAR_STEPS[0]))
            m = measure_round(search, overlap, setting, interval)
            for key in ("wait_s", "added_s", "share_of_epoch"):
                out[f"{load}_{mode}_{key}"] = m[key]
            if mode == "overlap":
                out[f"{load}_epd_s"] = m["epd_s"]
                out[f"{load}_overlap_child_slowdown"] = m["child_slowdown"]
                out[f"{load}_epoch_s"] = m["epoch_s"]
            print(f"nao_overlap: {load:8s} {mode:8s} epoch {m['epoch_s']:6.2f} s, EPD {m['epd_s']:7.2f} s, waited "
                  f"{m['wait_s']:7.2f} s, added {m['added_s']:7.2f} s ({100 * m['share_of_epoch']:.1f}% of an "
                  f"epoch)", flush=True)
    if "real" in loads:
        out["device"] = str(device)
    return out


def loads_of(text: str) -> tuple[str, ...]:
    """--load: a comma-separated subset of LOADS."""
    loads = tuple(x.strip() for x in text.split(",") if x.strip())
    bad = [x for x in loads if x not in LOADS]
    if bad or not loads:
        raise argparse.ArgumentTypeError(f"{text!r}: expected some of {', '.join(LOADS)}, comma-separated")
    return loads


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nao_overlap", description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlap", type=at_least(1), default=16,
                        help="search.nao.overlap_epochs to measure (default 16)")
    parser.add_argument("--scale", type=at_least(1.0, float), default=10.0,
                        help="divides the child's epoch and the EPD's 1000 passes (default 10)")
    parser.add_argument("--child-epoch-s", type=at_least(0.001, float), default=21.0,
                        help="the timed children's epoch before scaling, seconds (default 21: an H200's CIFAR-10 "
                             "child phase)")
    parser.add_argument("--load", type=loads_of, default=("sleep", "dispatch"),
                        help="some of sleep, dispatch, real (default sleep,dispatch)")
    parser.add_argument("--device", default="cpu", help="the real child's device (default cpu)")
    parser.add_argument("--quick", action="store_true", help="the real child at toy sizes (a smoke test)")
    parser.add_argument("--threads", type=at_least(1), default=None, help="torch's CPU threads (default: torch's)")
    parser.add_argument("--epd-threads", type=at_least(1), default=EPD_THREADS,
                        help=f"search.nao.overlap_threads: the background EPD's torch threads (default {EPD_THREADS})")
    parser.add_argument("--out", type=Path, default=None, help="folder for nao_overlap.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out: dict[str, Any] = measure(args.overlap, args.scale, args.child_epoch_s, args.load, args.device,
                                  QUICK if args.quick else PAPER, args.epd_threads)
    text = json.dumps(out, indent=2)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "nao_overlap.json").write_text(text + "\n")
    return out


if __name__ == "__main__":
    main()
