"""ImageNet training-step throughput on this machine (CUDA when present, else the CPUs), beside the input pipeline:

    python -m benchmarks.imagenet_step [--batch B] [--size 224] [--steps N] [--warmup N] [--device auto|cpu|cuda]
                                       [--input-json PATH] [--out benchmarks/results] [--quick]

Measures images/s of two training steps on random images [B, 3, S, S] and random labels already on the device
(no input pipeline): the evaluation step, ImageNetEvalNetwork of the paper-imagenet genotype (14 cells, C=48,
auxiliary head; label-smoothed cross entropy plus 0.4 x the auxiliary one, backward, gradient clipping, SGD as
ImageNetEvaluateConfig), and the search step, ImageNetSearchNetwork (8 cells, C=16) on an architecture sampled per
step by the search strategy (ednas, as ImageNetSearchConfig; cross entropy, backward, clipping, SGD). Each gets
`--warmup` untimed steps, then `--steps` timed ones (synchronised on CUDA); images/s = batch x steps / time. CUDA:
bf16 autocast, fused SGD, cuDNN autotuning, as the trainers run; also the peak of allocated memory. Defaults:
size 224; on CUDA batch 200 (as ImageNet training), 3 warm-up and 10 timed steps; on CPU batch 8, 2 and 10
(about 15 s on two idle cores; other processes on the cores slow the steps many times over). --quick: size 64,
batch 2, 6 and 5 cells, 1 and 1 steps (a smoke test).

The input pipeline's rate comes from a JSON of benchmarks/imagenet_input.py: --input-json, else the newest
imagenet-input-*.json (not -quick) in the --out folder. With it, reported for each step: which bounds an epoch
(the slower of input pipeline and step) and the hours of one epoch at that rate: the 1,281,167 ImageNet training
images for the evaluation, the 1,000,000 of the paper's search split for the search. Prints a table and writes
JSON to `--out` (imagenet-step-<time>[-quick].json).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import nn

from benchmarks.imagenet_input import IMAGENET_TRAIN_IMAGES, report
from ednas_core.config import ImageNetEvaluateConfig, ImageNetSearchConfig
from ednas_core.data.imagenet import PAPER_TRAIN_IMAGES
from ednas_core.genotypes import load_genotype
from ednas_core.models.cnn import count_parameters
from ednas_core.models.imagenet import ImageNetEvalNetwork
from ednas_core.runtime import device_name
from ednas_core.spaces import CNN_SPACE
from ednas_core.strategies import make_strategy
from ednas_core.supernet.cnn import ImageNetSearchNetwork

NUM_CLASSES = 1000
GENOTYPE = "paper-imagenet"


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    return torch.device(name)


def autocast(device: torch.device) -> contextlib.AbstractContextManager:
    return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else contextlib.nullcontext()


def sgd(model: nn.Module, lr: float, momentum: float, nesterov: bool, weight_decay: float,
        device: torch.device) -> torch.optim.SGD:
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, nesterov=nesterov,
                           weight_decay=weight_decay, fused=True if device.type == "cuda" else None)


def timed(step: Callable[[], None], warmup: int, steps: int, batch: int, device: torch.device) -> dict[str, float]:
    """Images/s of `steps` calls of `step` after `warmup` untimed ones; on CUDA also the peak allocated memory."""
    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    out = {"images_per_s": batch * steps / seconds, "step_ms": seconds / steps * 1000}
    if device.type == "cuda":
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    return out


def random_batch(batch: int, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(batch, 3, size, size, generator=generator)
    labels = torch.randint(0, NUM_CLASSES, (batch,), generator=generator)
    return images.to(device), labels.to(device)


def eval_step(device: torch.device, batch: int, size: int, layers: int, warmup: int, steps: int) -> dict[str, Any]:
    c = ImageNetEvaluateConfig()
    torch.manual_seed(0)
    model = ImageNetEvalNetwork(load_genotype(GENOTYPE), c.init_channels, layers, NUM_CLASSES,
                                auxiliary=True).to(device).train()
    optimizer = sgd(model, c.lr, c.momentum, c.nesterov, c.weight_decay, device)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=c.label_smoothing)
    images, labels = random_batch(batch, size, device)

    def step() -> None:
        with autocast(device):
            logits, aux_logits = model(images)
            loss = loss_fn(logits, labels)
            if aux_logits is not None:
                loss = loss + c.auxiliary_weight * loss_fn(aux_logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optimizer.step()

    return {"batch": batch, "layers": layers, "init_channels": c.init_channels, "genotype": GENOTYPE,
            "params": count_parameters(model), **timed(step, warmup, steps, batch, device)}


def search_step(device: torch.device, batch: int, size: int, layers: int, warmup: int, steps: int) -> dict[str, Any]:
    c = ImageNetSearchConfig()
    torch.manual_seed(0)
    model = ImageNetSearchNetwork(c.init_channels, layers, NUM_CLASSES).to(device).train()
    optimizer = sgd(model, c.lr, c.momentum, c.nesterov, c.weight_decay, device)
    loss_fn = nn.CrossEntropyLoss()
    strategy = make_strategy(CNN_SPACE, c, seed=0)
    strategy.begin_epoch(0)
    arch_generator = torch.Generator().manual_seed(0)
    images, labels = random_batch(batch, size, device)

    def step() -> None:
        arch = strategy.train_architecture(arch_generator)  # a fresh architecture per step, as the search samples
        with autocast(device):
            loss = loss_fn(model(images, arch), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), c.grad_clip)
        optimizer.step()

    return {"batch": batch, "layers": layers, "init_channels": c.init_channels, "strategy": c.strategy,
            "params": count_parameters(model), **timed(step, warmup, steps, batch, device)}


def newest_input_json(folder: Path) -> Path | None:
    """The newest full (not --quick) imagenet_input result in `folder`: names carry the time, so the last one."""
    paths = sorted(p for p in folder.glob("imagenet-input-*.json") if not p.name.endswith("-quick.json"))
    return paths[-1] if paths else None


def bounds(result: dict[str, Any], input_rate: float, input_json: Path) -> None:
    """Which of input pipeline and step bounds an epoch of each step, and that epoch's hours at the slower rate."""
    result["input_images_per_s"] = input_rate
    result["input_json"] = str(input_json)
    for key, images in (("eval", IMAGENET_TRAIN_IMAGES), ("search", PAPER_TRAIN_IMAGES)):
        step_rate = result[f"{key}_step"]["images_per_s"]
        result[f"bound_{key}"] = "input pipeline" if input_rate < step_rate else "training step"
        result[f"{key}_epoch_hours"] = images / min(input_rate, step_rate) / 3600


def table(result: dict[str, Any]) -> str:
    lines = [f"ImageNet training step: {result['size']}x{result['size']} random images, {result['device']}, "
             f"{result['dtype']}, torch {result['torch']}, {result['warmup']} warm-up + {result['steps']} timed steps",
             f"  {'step':<7} {'cells':>5} {'C':>3} {'batch':>5} {'params':>10} {'ms/step':>9} {'images/s':>9}"
             + (f" {'peak MB':>8}" if "peak_memory_mb" in result["eval_step"] else "")]
    for key in ("eval", "search"):
        r = result[f"{key}_step"]
        lines.append(f"  {key:<7} {r['layers']:>5} {r['init_channels']:>3} {r['batch']:>5} {r['params']:>10,} "
                     f"{r['step_ms']:9.1f} {r['images_per_s']:9.1f}"
                     + (f" {r['peak_memory_mb']:8.0f}" if "peak_memory_mb" in r else ""))
    if "input_images_per_s" in result:
        lines.append(f"  input pipeline {result['input_images_per_s']:.1f} images/s ({result['input_json']})")
        for key, images in (("eval", IMAGENET_TRAIN_IMAGES), ("search", PAPER_TRAIN_IMAGES)):
            lines.append(f"  {key} epoch ({images:,} images): {result[f'{key}_epoch_hours']:.2f} h, bound by the "
                         f"{result[f'bound_{key}']}")
    else:
        lines.append("  no imagenet_input result (--input-json): which bounds an epoch is not reported")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.imagenet_step", description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=None,
                        help="batch of both steps (default 200 CUDA, 8 CPU; 2 quick)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 224; 64 quick)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps (default 10; 1 quick)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 3 CUDA, 2 CPU; 1 quick)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: CUDA when present")
    parser.add_argument("--input-json", default=None,
                        help="an imagenet_input result (default: the newest full one in --out, if any)")
    parser.add_argument("--out", default="benchmarks/results", help="folder for the JSON result")
    parser.add_argument("--quick", action="store_true", help="small images, batch and networks (a smoke test)")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    cuda = device.type == "cuda"
    batch = args.batch or (2 if args.quick else 200 if cuda else 8)
    size = args.size or (64 if args.quick else 224)
    steps = args.steps or (1 if args.quick else 10)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 3 if cuda else 2)
    eval_layers, search_layers = ((6, 5) if args.quick else
                                  (ImageNetEvaluateConfig().layers, ImageNetSearchConfig().layers))
    if batch < 1 or steps < 1 or warmup < 0 or size < 32:
        parser.error(f"need --batch >= 1, --steps >= 1, --warmup >= 0 and --size >= 32, got {batch}, {steps}, "
                     f"{warmup} and {size}")
    out = Path(args.out)
    input_json = Path(args.input_json) if args.input_json else newest_input_json(out)
    input_rate = None
    if input_json is not None:
        try:
            input_rate = float(json.loads(input_json.read_text())["best_images_per_s"])
        except (OSError, ValueError, KeyError, TypeError) as err:
            parser.error(f"--input-json {input_json}: no imagenet_input result with best_images_per_s ({err!r})")
    if cuda:
        torch.backends.cudnn.benchmark = True
    description = f"CUDA {device_name(device)}" if cuda else device_name(device)
    result: dict[str, Any] = {
        "benchmark": "imagenet_step", "device": description, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__, "size": size,
        "dtype": "bf16 autocast" if cuda else "float32", "warmup": warmup, "steps": steps, "quick": args.quick,
        "eval_step": eval_step(device, batch, size, eval_layers, warmup, steps),
        "search_step": search_step(device, batch, size, search_layers, warmup, steps)}
    if input_rate is not None and input_json is not None:
        bounds(result, input_rate, input_json)
    return report(result, table(result), out, "imagenet-step", args.quick)


if __name__ == "__main__":
    main()
