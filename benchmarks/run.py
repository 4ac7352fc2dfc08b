"""Benchmark harness: `python -m benchmarks.run [--quick] [--device auto] [--out benchmarks/results]`.

Measures on the current device, at the paper's sizes (or tiny ones with --quick, for a CPU smoke test):
  search_step   one child training step of the sampled weight-sharing network vs the same child built as a
                fixed network (same batch, same architecture): the ratio should be close to 1
  search_epoch  one search epoch (child split + policy split), its child and policy phases, images/s, and the
                policy step time and its share of the epoch
  eval_train    evaluation-network training images/s with each optimisation switched on in turn, peak memory
  data          augmented batches per second from the device-resident loader
  rnn           PTB-sized recurrent steps in tokens/s: the search child (emb = hidden = 300, batch 256, bptt 35)
                and the evaluation network (850, batch 64), on random tokens of a 10,000-word vocabulary
Writes JSON (device name, torch version, dtype, sizes, results) and prints a table. Synthetic uint8 images of
CIFAR-10's shape are used: throughput does not depend on pixel values.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ednas_core.child_cnn import cnn_search
from ednas_core.config import DataConfig, RuntimeConfig, SearchConfig
from ednas_core.data import DeviceLoader, ImageDataset
from ednas_core.genotypes import PAPER_GENOTYPES
from ednas_core.models.cnn import EvalNetwork
from ednas_core.models.rnn import RNNEvalNetwork
from ednas_core.policy import PolicyVectors
from ednas_core.runtime import Runtime
from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.supernet.cnn import SearchNetwork
from ednas_core.supernet.rnn import RNNSearchNetwork


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


PAPER = Sizes(images=50_000, image_size=32, search_layers=8, search_channels=16, eval_layers=20,
              eval_channels=36, batch=128, steps=50)
QUICK = Sizes(images=256, image_size=8, search_layers=5, search_channels=4, eval_layers=5, eval_channels=4,
              batch=16, steps=2, rnn_search_hidden=16, rnn_eval_hidden=16, rnn_search_batch=8, rnn_eval_batch=8,
              bptt=10, vocab=100)


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


def train_step_fn(rt: Runtime, net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor], arch=None,
                  fused: bool = False) -> Callable[[], None]:
    kwargs = {"fused": True} if fused else {}
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=3e-4, **kwargs)
    loss_fn = nn.CrossEntropyLoss()
    images, labels = batch

    def step() -> None:
        with rt.autocast():
            out = net(images, arch) if arch is not None else net(images)
            logits = out[0] if isinstance(out, tuple) else out
            loss = loss_fn(logits, labels)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 5.0)
        opt.step()

    return step


def one_batch(rt: Runtime, data: ImageDataset, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    loader = DeviceLoader(data.train_images[:batch].to(rt.device), data.train_labels[:batch].to(rt.device), batch,
                          data.mean, data.std, seed=0, augment=True, channels_last=rt.channels_last)
    return next(iter(loader.epoch(0)))


def bench_search_step(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, float]:
    arch = PolicyVectors(CNN_SPACE).sample(torch.Generator().manual_seed(1))
    batch = one_batch(rt, data, sizes.batch)
    out = {}
    for name, only in (("supernet", None), ("fixed", arch)):
        torch.manual_seed(0)
        net = SearchNetwork(sizes.search_channels, sizes.search_layers, only=only).to(rt.device)
        if rt.channels_last:
            net = net.to(memory_format=torch.channels_last)
        out[f"{name}_step_ms"] = 1000 * timed(rt, train_step_fn(rt, net, batch, arch), sizes.steps)
    out["ratio"] = out["supernet_step_ms"] / out["fixed_step_ms"]
    return out


def bench_search_epoch(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, float]:
    config = SearchConfig(epochs=1, batch_size=sizes.batch, policy_batch_size=sizes.batch,
                          layers=sizes.search_layers, init_channels=sizes.search_channels)
    search = cnn_search(data, config, DataConfig(), rt, checkpoint_path=None)
    m = search.run().history[0].metrics
    _, policy_steps = search.child.steps_per_epoch
    return {"epoch_s": m["epoch_time_s"], "child_s": m["child_time_s"], "policy_s": m["policy_time_s"],
            "child_images_per_s": m["child_images_per_s"], "policy_images_per_s": m["policy_images_per_s"],
            "policy_step_ms": 1000 * m["policy_time_s"] / policy_steps,
            "policy_share": m["policy_time_s"] / m["epoch_time_s"],
            "full_search_hours_300_epochs": 300 * m["epoch_time_s"] / 3600 * (50_000 / sizes.images)}


def bench_eval_train(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, Any]:
    """Images/s of the evaluation network, adding one optimisation at a time (each on top of the previous)."""
    on_cuda = rt.device.type == "cuda"
    variants = [("fp32_nchw", {}), ("channels_last", {"channels_last": True})]
    if on_cuda:
        variants += [("bf16", {"channels_last": True, "amp": True}),
                     ("fused_sgd", {"channels_last": True, "amp": True, "fused": True}),
                     ("compile", {"channels_last": True, "amp": True, "fused": True, "compile": True})]
    out: dict[str, Any] = {}
    for name, opts in variants:
        variant_rt = dataclasses.replace(rt, amp=opts.get("amp", False), channels_last=opts.get("channels_last", False))
        torch.manual_seed(0)
        net = EvalNetwork(PAPER_GENOTYPES["paper-cifar10"], sizes.eval_channels, sizes.eval_layers).to(rt.device)
        if variant_rt.channels_last:
            net = net.to(memory_format=torch.channels_last)
        net.train()
        net.drop_path_prob = 0.2
        model = torch.compile(net) if opts.get("compile") else net
        batch = one_batch(variant_rt, data, sizes.batch)
        if on_cuda:
            torch.cuda.reset_peak_memory_stats(rt.device)
        seconds = timed(variant_rt, train_step_fn(variant_rt, model, batch, fused=opts.get("fused", False)),
                        sizes.steps, warmup=3 if opts.get("compile") else 2)
        out[f"{name}_images_per_s"] = sizes.batch / seconds
        if on_cuda:
            out[f"{name}_peak_memory_gb"] = torch.cuda.max_memory_allocated(rt.device) / 1e9
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


def bench_rnn(rt: Runtime, sizes: Sizes, data: ImageDataset) -> dict[str, float]:
    """Tokens per second of one training step (forward, backward, clip 0.25, SGD) of the recurrent networks."""
    g = torch.Generator().manual_seed(0)
    arch = PolicyVectors(RNN_SPACE).sample(g)
    out = {}
    for name, hidden, batch in (("search", sizes.rnn_search_hidden, sizes.rnn_search_batch),
                                ("eval", sizes.rnn_eval_hidden, sizes.rnn_eval_batch)):
        torch.manual_seed(0)
        if name == "search":
            net: nn.Module = RNNSearchNetwork(sizes.vocab, hidden, hidden).to(rt.device)
        else:
            net = RNNEvalNetwork(PAPER_GENOTYPES["paper-ptb"], sizes.vocab, hidden, hidden).to(rt.device)
        net.train()
        tokens = torch.randint(0, sizes.vocab, (sizes.bptt + 1, batch), generator=g).to(rt.device)
        x, y = tokens[:-1], tokens[1:]
        opt = torch.optim.SGD(net.parameters(), lr=20.0)
        state = {"hidden": net.init_hidden(batch)}

        def step() -> None:
            logits, hidden = net(x, state["hidden"], arch) if name == "search" else net(x, state["hidden"])
            state["hidden"] = hidden.detach()
            loss = nn.functional.cross_entropy(logits.view(-1, logits.shape[-1]), y.reshape(-1))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(net.parameters(), 0.25)
            opt.step()

        out[f"{name}_tokens_per_s"] = sizes.bptt * batch / timed(rt, step, sizes.steps)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON result")
    parser.add_argument("--only", nargs="*", default=None,
                        help="subset of: search_step search_epoch eval_train data rnn")
    args = parser.parse_args(argv)
    rt = Runtime.from_config(RuntimeConfig(device=args.device))
    sizes = QUICK if args.quick else PAPER
    data = synthetic_cifar(sizes)
    benches = {"search_step": bench_search_step, "search_epoch": bench_search_epoch,
               "eval_train": bench_eval_train, "data": bench_data, "rnn": bench_rnn}
    results: dict[str, Any] = {
        "device": rt.name, "torch": torch.__version__, "python": platform.python_version(),
        "dtype": "bf16 autocast" if rt.amp else "float32", "channels_last": rt.channels_last,
        "sizes": dataclasses.asdict(sizes), "quick": args.quick,
    }
    for name, bench in benches.items():
        if args.only is None or name in args.only:
            results[name] = bench(rt, sizes, data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{rt.device.type}-{time.strftime('%Y%m%d-%H%M%S')}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{results['device']}, torch {results['torch']}, {results['dtype']}")
    for name in benches:
        for key, value in results.get(name, {}).items():
            print(f"  {name:13s} {key:32s} {value:12.4g}")
    print(f"-> {path}")
    return results


if __name__ == "__main__":
    main()
