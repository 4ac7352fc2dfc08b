"""Benchmark harness: `python -m benchmarks.run [--quick] [--device auto] [--out benchmarks/results]
[--only SECTION ...] [--compare BEFORE.json]`.

Measures on the current device, at the paper's sizes (or tiny ones with --quick, for a CPU smoke test), by
timing the library's own step functions (ImageChild.train_step, GenotypeTrainer.train_step, ...), so that a
number measures what a run does:
  search_step   one child step of the sampled weight-sharing network vs the same architecture built as a fixed
                network (same batch): the ratio should be close to 1; ATen ops per step; peak memory on CUDA
  search_epoch  one search epoch (child split + policy split), its child and policy phases, images/s, the
                policy step time (and its host-side sample + REINFORCE update alone) and its share of the
                epoch, and the 300-epoch projection
  eval_train    evaluation-network training images/s with each runtime switch added in turn (channels_last,
                bf16 autocast, fused SGD, torch.compile; and cuDNN deterministic mode), ATen ops per step,
                peak memory on CUDA
  data          augmented batches per second from the device-resident loader
  rnn           PTB-sized recurrent steps in tokens/s: the search child (emb = hidden = 300, batch 256, bptt 35),
                its policy reward, and the evaluation network (850, batch 64), on random tokens (10,000 words)
  memory        peak memory of a search step (heaviest architecture) and an evaluation step at batch 128, each
                in a fresh process (benchmarks/memory.py; on CPU a float32 peak-RSS upper bound)
  strategies    host-side seconds per search epoch of every strategy (sampling, learning, decoding) at the
                paper's CIFAR-10 and PTB sizes with its published settings, and its share of a search epoch
                next to the child's measured epoch (benchmarks/strategies.py); on a GPU also NAO with its EPD
                there (search.nao.device: search), keys nao_epd_on_device_*
  nb201_epoch   one NAS-Bench-201 supernet search epoch (EDNAS policy) at the benchmark's C=16, N=5 on the
                synthetic 32x32 images: child and policy steps/s and images/s (quick: C=4, N=1 on 8x8)
Writes JSON (device name, torch version, dtype, sizes, results) and prints a table; --compare prints each
number's ratio to an earlier JSON (before/after a change). Synthetic uint8 images of CIFAR-10's shape are
used: throughput does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import subprocess
import sys
import time
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import Any, Callable, Iterator

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from ednas_core.child_cnn import ImageChild, cnn_search
from ednas_core.child_nb201 import nb201_search
from ednas_core.child_rnn import TextChild
from ednas_core.config import (DataConfig, EvaluateConfig, RNNEvaluateConfig, RNNSearchConfig, RuntimeConfig,
                               SearchConfig)
from ednas_core.data import DeviceLoader, ImageDataset
from ednas_core.data.ptb import Corpus, bptt_batches
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.strategies import make_strategy
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.runtime import Runtime, set_cuda_determinism
from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.supernet.cnn import SearchNetwork
from ednas_core.train import GenotypeTrainer
from ednas_core.train_rnn import RNNTrainer

from .strategies import bench_nao_epd_on_device, bench_strategies

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    images: int          # training images of the synthetic CIFAR-shaped set (search: 80% child, 20% policy)
    image_size: int
    search_layers: int
    search_channels: int
    eval_layers: int
    eval_channels: int
    batch: int
    steps: int           # timed steps per step measurement
    rnn_search_hidden: int = 300
    rnn_eval_hidden: int = 850
    rnn_search_batch: int = 256
    rnn_eval_batch: int = 64
    bptt: int = 35
    vocab: int = 10_000
    name: str = "paper"


PAPER = Sizes(images=50_000, image_size=32, search_layers=8, search_channels=16, eval_layers=20,
              eval_channels=36, batch=128, steps=50)
QUICK = Sizes(images=256, image_size=8, search_layers=5, search_channels=4, eval_layers=5, eval_channels=4,
              batch=16, steps=2, rnn_search_hidden=16, rnn_eval_hidden=16, rnn_search_batch=8, rnn_eval_batch=8,
              bptt=10, vocab=100, name="quick")


def synthetic_cifar(sizes: Sizes) -> ImageDataset:
    g = torch.Generator().manual_seed(0)
    shape = (sizes.images, 3, sizes.image_size, sizes.image_size)
    test = max(sizes.images // 5, sizes.batch)
    return ImageDataset(torch.randint(0, 256, shape, generator=g, dtype=torch.uint8),
                        torch.randint(0, 10, (sizes.images,), generator=g),
                        torch.randint(0, 256, (test, *shape[1:]), generator=g, dtype=torch.uint8),
                        torch.randint(0, 10, (test,), generator=g), classes=[str(i) for i in range(10)])


def timed(rt: Runtime, fn: Callable[[], Any], steps: int, warmup: int = 2) -> float:
    """Seconds per call of fn, after warm-up, synchronising only around the timed loop."""
    for _ in range(warmup):
        fn()
    rt.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    rt.synchronize()
    return (time.perf_counter() - start) / steps


class OpCounter(TorchDispatchMode):
    """Counts the ATen operators a step dispatches: each is at least one launch's worth of host work (views
    included), so ops x per-op host cost bounds how fast a launch-bound step can go on a GPU."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        self.count += 1
        return func(*args, **(kwargs or {}))


def ops_per_call(fn: Callable[[], Any]) -> int:
    with OpCounter() as counter:
        fn()
    return counter.count


def peak_memory_gb(rt: Runtime) -> float:
    return torch.cuda.max_memory_allocated(rt.device) / 1e9


def reset_peak_memory(rt: Runtime) -> None:
    if rt.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(rt.device)


def bench_search_step(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, float]:
    """ImageChild.train_step (the search's own step) on the weight-sharing network and on the same sampled
    architecture built as a fixed network, same batch."""
    arch = PolicyVectors(CNN_SPACE).sample(torch.Generator().manual_seed(1))
    config = search_config(sizes)
    supernet = ImageChild.build(data, config, DataConfig(), rt)
    batch = next(iter(supernet.train_batches(0)))
    torch.manual_seed(0)
    fixed_net = SearchNetwork(sizes.search_channels, sizes.search_layers, only=arch).to(rt.device)
    if rt.channels_last:
        fixed_net = fixed_net.to(memory_format=torch.channels_last)
    fixed = ImageChild(fixed_net, supernet.train_loader, supernet.valid_loader, config, rt)
    out: dict[str, float] = {}
    for _ in range(3):  # alternate the two, keep each one's best round: background load hits both alike
        for name, child in (("supernet", supernet), ("fixed", fixed)):
            reset_peak_memory(rt)
            ms = 1000 * timed(rt, lambda: child.train_step(arch, batch), sizes.steps)
            out[f"{name}_step_ms"] = min(ms, out.get(f"{name}_step_ms", math.inf))
            if rt.device.type == "cuda":
                out[f"{name}_peak_memory_gb"] = peak_memory_gb(rt)
    out["ratio"] = out["supernet_step_ms"] / out["fixed_step_ms"]
    out["supernet_ops_per_step"] = ops_per_call(lambda: supernet.train_step(arch, batch))
    out["fixed_ops_per_step"] = ops_per_call(lambda: fixed.train_step(arch, batch))
    return out


def search_config(sizes: Sizes) -> SearchConfig:
    return SearchConfig(epochs=1, batch_size=sizes.batch, policy_batch_size=sizes.batch,
                        layers=sizes.search_layers, init_channels=sizes.search_channels)


def bench_search_epoch(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, float]:
    search = cnn_search(data, search_config(sizes), DataConfig(), rt, checkpoint_path=None)
    m = search.run().history[0].metrics
    _, policy_steps = search.child.steps_per_epoch
    # the host-side part of a policy step alone: sample an architecture and take one REINFORCE step
    policy = make_strategy(CNN_SPACE, search_config(sizes), seed=0)
    g = torch.Generator().manual_seed(0)
    host_s = timed(rt, lambda: policy.learn(policy.sample(g), 0.5), max(sizes.steps, 20))
    return {"epoch_s": m["epoch_time_s"], "child_s": m["child_time_s"], "policy_s": m["policy_time_s"],
            "child_images_per_s": m["child_images_per_s"], "policy_images_per_s": m["policy_images_per_s"],
            "policy_step_ms": 1000 * m["policy_time_s"] / policy_steps,
            "policy_host_update_ms": 1000 * host_s,
            "policy_share": m["policy_time_s"] / m["epoch_time_s"],
            "full_search_hours_300_epochs": 300 * m["epoch_time_s"] / 3600 * (50_000 / sizes.images)}


# Each variant adds one optimisation to the one before; `deterministic` is the last full-speed variant with
# cuDNN's deterministic algorithms (and no autotuning, no TF32) instead of compile: what bit-exact repeats cost.
EVAL_VARIANTS: list[tuple[str, dict[str, bool]]] = [
    ("fp32_nchw", {}),
    ("channels_last", {"channels_last": True}),
    ("bf16", {"channels_last": True, "amp": True}),
    ("fused_sgd", {"channels_last": True, "amp": True, "fused_optimizer": True}),
    ("compile", {"channels_last": True, "amp": True, "fused_optimizer": True, "compile": True}),
    ("deterministic", {"channels_last": True, "amp": True, "fused_optimizer": True, "deterministic": True}),
]
CPU_VARIANTS = ("fp32_nchw", "channels_last")


@contextlib.contextmanager
def deterministic_kernels(rt: Runtime, on: bool) -> Iterator[None]:
    """What runtime.deterministic switches on CUDA, for the duration of one variant; then rt's settings again
    (and no cuBLAS workspace variable left behind for the memory probe's subprocesses)."""
    if not on:
        yield
        return
    had_workspace = "CUBLAS_WORKSPACE_CONFIG" in os.environ
    set_cuda_determinism(True)
    try:
        yield
    finally:
        set_cuda_determinism(rt.deterministic)
        if not had_workspace and not rt.deterministic:
            os.environ.pop("CUBLAS_WORKSPACE_CONFIG", None)


def eval_train_step(rt: Runtime, sizes: Sizes, data: ImageDataset) -> Callable[[], None]:
    """GenotypeTrainer.train_step of the paper's CIFAR-10 evaluation network (auxiliary head, drop-path 0.2) on
    one fixed batch."""
    config = EvaluateConfig(epochs=600, batch_size=sizes.batch, layers=sizes.eval_layers,
                            init_channels=sizes.eval_channels)
    trainer = GenotypeTrainer(PAPER_GENOTYPES["paper-cifar10"], data, config, rt)
    trainer.model.train()
    trainer.model.drop_path_prob = 0.2
    images, labels = next(iter(trainer.train_loader.epoch(0)))
    return lambda: trainer.train_step(images, labels)


def bench_eval_train(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, Any]:
    """Evaluation training steps in images/s with the runtime switches of each variant, ATen ops per step, and
    peak memory on CUDA."""
    on_cuda = rt.device.type == "cuda"
    out: dict[str, Any] = {}
    for name, opts in EVAL_VARIANTS:
        if not on_cuda and name not in CPU_VARIANTS:
            continue
        variant = dataclasses.replace(rt, amp=opts.get("amp", False), channels_last=opts.get("channels_last", False),
                                      fused_optimizer=opts.get("fused_optimizer", False),
                                      compile=opts.get("compile", False))
        with deterministic_kernels(rt, opts.get("deterministic", False)):
            step = eval_train_step(variant, sizes, data)
            reset_peak_memory(rt)
            seconds = timed(variant, step, sizes.steps, warmup=3 if variant.compile else 2)
        out[f"{name}_images_per_s"] = sizes.batch / seconds
        if not variant.compile:
            out[f"{name}_ops_per_step"] = ops_per_call(step)
        if on_cuda:
            out[f"{name}_peak_memory_gb"] = peak_memory_gb(rt)
        del step  # frees the variant's network before the next one is built
    best = max(v for k, v in out.items() if k.endswith("_images_per_s"))
    out["full_eval_hours_600_epochs"] = 600 * 50_000 / best / 3600  # training steps only, at the best variant
    return out


def bench_data(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, float]:
    loader = DeviceLoader(data.train_images.to(rt.device), data.train_labels.to(rt.device), sizes.batch, data.mean,
                          data.std, seed=0, augment=True, cutout=16 if sizes.image_size >= 32 else 4,
                          channels_last=rt.channels_last)
    rt.synchronize()
    start = time.perf_counter()
    batches = sum(1 for _ in loader.epoch(0))
    rt.synchronize()
    seconds = time.perf_counter() - start
    return {"batches_per_s": batches / seconds, "images_per_s": loader.num_samples / seconds}


def random_corpus(sizes: Sizes) -> Corpus:
    """Uniform random tokens over a PTB-sized vocabulary, enough for warm-up plus the timed windows."""
    g = torch.Generator().manual_seed(0)
    n = (sizes.steps + 4) * sizes.bptt * max(sizes.rnn_search_batch, sizes.rnn_eval_batch)
    return Corpus(vocab=[f"w{i}" for i in range(sizes.vocab)], train=torch.randint(0, sizes.vocab, (n,), generator=g),
                  valid=torch.randint(0, sizes.vocab, (n,), generator=g),
                  test=torch.randint(0, sizes.vocab, (n,), generator=g))


def bench_nb201_epoch(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, float]:
    """One search epoch of the NB201 weight-sharing network (child_nb201.nb201_search, EDNAS policy) at the
    benchmark's skeleton sizes: C=16 channels, N=5 cells per stage (quick: 4 and 1)."""
    channels, cells = (4, 1) if sizes.name == "quick" else (16, 5)
    config = SearchConfig(epochs=1, batch_size=sizes.batch, policy_batch_size=sizes.batch, layers=cells,
                          init_channels=channels)
    search = nb201_search(data, config, DataConfig(), rt, checkpoint_path=None)
    m = search.run().history[0].metrics
    child_steps, _ = search.child.steps_per_epoch
    return {"channels": channels, "cells_per_stage": cells, "epoch_s": m["epoch_time_s"],
            "child_steps_per_s": child_steps / m["child_time_s"],
            "policy_steps_per_s": m["reward_count"] / m["policy_time_s"],
            "child_images_per_s": m["child_images_per_s"], "policy_images_per_s": m["policy_images_per_s"]}


def bench_rnn(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, float]:
    """Tokens/s of TextChild.train_step (the PTB search child), of its policy reward (one no-grad window) and
    of RNNTrainer.train_step (the evaluation network), at the paper's sizes, on random tokens."""
    corpus = random_corpus(sizes)
    arch = PolicyVectors(RNN_SPACE).sample(torch.Generator().manual_seed(0))
    child = TextChild.build(corpus, RNNSearchConfig(batch_size=sizes.rnn_search_batch,
                                                    policy_batch_size=sizes.rnn_search_batch, bptt=sizes.bptt,
                                                    emb=sizes.rnn_search_hidden, hidden=sizes.rnn_search_hidden), rt)
    child.start_epoch(0)
    windows = cycle(list(bptt_batches(child.train_data, sizes.bptt)))
    valid = next(iter(child.policy_batches(0)))
    trainer = RNNTrainer(PAPER_GENOTYPES["paper-ptb"], corpus,
                         RNNEvaluateConfig(batch_size=sizes.rnn_eval_batch, bptt=sizes.bptt,
                                           emb=sizes.rnn_eval_hidden, hidden=sizes.rnn_eval_hidden), rt)
    trainer.model.train()
    eval_windows = cycle(list(bptt_batches(trainer.train_data, sizes.bptt)))
    state = {"hidden": trainer.model.init_hidden(sizes.rnn_eval_batch)}

    def eval_step() -> None:
        state["hidden"] = trainer.train_step(*next(eval_windows), state["hidden"])

    search_tokens, eval_tokens = sizes.bptt * sizes.rnn_search_batch, sizes.bptt * sizes.rnn_eval_batch
    return {"search_tokens_per_s": search_tokens / timed(rt, lambda: child.train_step(arch, next(windows)),
                                                         sizes.steps),
            "reward_tokens_per_s": search_tokens / timed(rt, lambda: child.reward(arch, valid), sizes.steps),
            "eval_tokens_per_s": eval_tokens / timed(rt, eval_step, sizes.steps)}


def bench_memory(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, Any]:
    """Peak memory of a search step (heaviest architecture) and of an evaluation step at the benchmark batch,
    each in a fresh process (benchmarks/memory.py says how each device is measured)."""
    out: dict[str, Any] = {}
    for workload in ("search", "eval"):
        command = [sys.executable, "-m", "benchmarks.memory", workload, "--device", str(rt.device),
                   "--batch", str(sizes.batch)] + (["--quick"] if sizes.name == "quick" else [])
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"benchmarks.memory {workload} failed: {done.stderr.strip().splitlines()[-1:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        out[f"{workload}_peak_gb"] = result["peak_gb"]
        out["method"] = result["method"]
    return out


def compare(results: dict[str, Any], before: dict[str, Any]) -> list[tuple[str, str, float, float, float]]:
    """(section, key, before, now, now/before) for every number both runs measured."""
    rows = []
    for section, values in results.items():
        if isinstance(values, dict) and isinstance(before.get(section), dict):
            for key, now in values.items():
                old = before[section].get(key)
                if isinstance(now, (int, float)) and isinstance(old, (int, float)) and old:
                    rows.append((section, key, float(old), float(now), float(now) / float(old)))
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON result")
    parser.add_argument("--only", nargs="*", default=None,
                        help="subset of: search_step search_epoch eval_train data rnn memory strategies nb201_epoch")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default: 50; 2 with --quick)")
    parser.add_argument("--compare", default=None, metavar="BEFORE.json",
                        help="an earlier result (same device): print each number's ratio now/before")
    args = parser.parse_args(argv)
    before = json.loads(Path(args.compare).read_text()) if args.compare else None
    rt = Runtime.from_config(RuntimeConfig(device=args.device))
    sizes = QUICK if args.quick else PAPER
    if args.steps is not None:
        if args.steps < 1:
            parser.error(f"--steps must be at least 1, got {args.steps}")
        sizes = dataclasses.replace(sizes, steps=args.steps)
    data = synthetic_cifar(sizes)
    benches = {"search_step": bench_search_step, "search_epoch": bench_search_epoch,
               "eval_train": bench_eval_train, "data": bench_data, "rnn": bench_rnn, "memory": bench_memory,
               "strategies": lambda rt, sizes, data: {
                   **bench_strategies(sizes, results.get("search_epoch")),
                   **bench_nao_epd_on_device(sizes, str(rt.device), results.get("search_epoch"))},
               "nb201_epoch": bench_nb201_epoch}
    results: dict[str, Any] = {
        "device": rt.name, "torch": torch.__version__, "python": platform.python_version(),
        "dtype": "bf16 autocast" if rt.amp else "float32", "channels_last": rt.channels_last,
        "sizes": dataclasses.asdict(sizes), "quick": args.quick,
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{rt.device.type}-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    for name, bench in benches.items():
        if args.only is None or name in args.only:
            results[name] = bench(rt, sizes, data)
            path.write_text(json.dumps(results, indent=2) + "\n")  # after each section: a killed run keeps them
    print(f"{results['device']}, torch {results['torch']}, {results['dtype']}")
    for name in benches:
        for key, value in results.get(name, {}).items():
            if isinstance(value, (int, float)):
                print(f"  {name:13s} {key:32s} {value:12.4g}")
            else:
                print(f"  {name:13s} {key:32s} {value}")
    if before is not None:
        if before.get("device") != results["device"]:
            print(f"note: {args.compare} was measured on {before.get('device')}, not on this device")
        print(f"now / before ({args.compare}):")
        for section, key, old, now, ratio in compare(results, before):
            print(f"  {section:13s} {key:32s} {old:12.4g} -> {now:12.4g}  x{ratio:.3f}")
    print(f"-> {path}")
    return results


if __name__ == "__main__":
    main()
