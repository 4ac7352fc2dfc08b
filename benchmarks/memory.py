"""Peak memory of training steps, each workload in a fresh process:
`python -m benchmarks.memory {search,eval} [--device auto] [--batch 128] [--quick]` prints one JSON line.

  search  the weight-sharing search network (8 cells, C=16) training on its heaviest architecture: every edge
          of both cells a sep_conv_5x5 (the op that keeps the most activations for backward)
  eval    the evaluation network (20 cells, C=36, auxiliary head, drop-path) of the paper's CIFAR-10 genotype

CUDA: torch.cuda.max_memory_allocated over the steps (live tensors; the caching allocator reserves a little
more, reported as peak_reserved_gb). CPU: the process's peak resident set size during the steps minus its
size before them, in float32: an upper bound for the same step on a GPU in bf16 autocast, whose activations
are mostly half the size (GPU-only extras such as the CUDA context and cuDNN workspaces are not included).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import sys
from pathlib import Path
from typing import Callable

import torch

from ednas_core.child_cnn import ImageChild
from ednas_core.config import DataConfig, RuntimeConfig
from ednas_core.runtime import Runtime
from ednas_core.spaces import CNN_SPACE, Architecture

from .run import PAPER, QUICK, Sizes, eval_train_step, search_config, synthetic_cifar

WORKLOADS = ("search", "eval")
STEPS = 2


def heaviest_architecture(op: str = "sep_conv_5x5") -> Architecture:
    """Every node takes inputs 0 and 1 through `op`, in both cell types."""
    index = CNN_SPACE.cell.ops.index(op)
    cell = tuple(((0, index), (1, index)) for _ in CNN_SPACE.cell.node_ids)
    return {t: cell for t in CNN_SPACE.cell_types}


def current_rss_bytes() -> int:
    """Resident set size now (Linux /proc; elsewhere the peak so far, which makes the result a lower bound)."""
    statm = Path("/proc/self/statm")
    if statm.is_file():
        return int(statm.read_text().split()[1]) * resource.getpagesize()
    return peak_rss_bytes()


def peak_rss_bytes() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # macOS reports bytes, Linux KiB


def step_function(workload: str, rt: Runtime, sizes: Sizes, batch: int) -> Callable[[], None]:
    sizes = dataclasses.replace(sizes, images=4 * batch, batch=batch)
    data = synthetic_cifar(sizes)
    if workload == "search":
        child = ImageChild.build(data, search_config(sizes), DataConfig(), rt)
        arch, images = heaviest_architecture(), next(iter(child.train_batches(0)))
        return lambda: child.train_step(arch, images)
    return eval_train_step(rt, sizes, data)


def measure(workload: str, device: str = "auto", batch: int = 128, quick: bool = False) -> dict:
    rt = Runtime.from_config(RuntimeConfig(device=device))
    sizes = QUICK if quick else PAPER
    step = step_function(workload, rt, sizes, batch)
    out = {"workload": workload, "batch": batch, "device": rt.name,
           "dtype": "bf16 autocast" if rt.amp else "float32", "steps": STEPS}
    if rt.device.type == "cuda":
        torch.cuda.synchronize(rt.device)
        torch.cuda.reset_peak_memory_stats(rt.device)
        for _ in range(STEPS):
            step()
        torch.cuda.synchronize(rt.device)
        out["peak_gb"] = torch.cuda.max_memory_allocated(rt.device) / 1e9
        out["peak_reserved_gb"] = torch.cuda.max_memory_reserved(rt.device) / 1e9
        out["method"] = "torch.cuda.max_memory_allocated"
    else:
        before = current_rss_bytes()
        for _ in range(STEPS):
            step()
        out["peak_gb"] = max(peak_rss_bytes() - before, 0) / 1e9
        out["method"] = "peak RSS increase during the steps (float32, CPU)"
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workload", choices=WORKLOADS)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--quick", action="store_true", help="tiny networks (a smoke test)")
    args = parser.parse_args(argv)
    if args.batch < 1:
        parser.error(f"--batch must be at least 1, got {args.batch}")
    result = measure(args.workload, args.device, args.batch, args.quick)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
