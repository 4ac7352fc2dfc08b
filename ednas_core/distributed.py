"""Several processes (one per GPU, or gloo processes on a CPU) training one model with torchrun.

torchrun sets RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE, MASTER_ADDR and MASTER_PORT in every process it
starts; `init_from_env()` reads them and joins the process group (nccl on CUDA, gloo on CPU). Outside torchrun
(or before init) the world is one process, rank 0, and every helper here is a no-op, so the single-process code
path is the same code. A stage with `runtime.gpus: N > 1` re-launches itself under torchrun (`relaunch_args`).

Sharding: every rank draws the same seeded permutation of the epoch and takes every world-th position of it,
starting at its rank (DistributedSampler's layout), so that batch i of rank r is rows r, r + W, ... of batch i of
one process with the W-times larger batch. Training shards DROP the remainder (len % W positions at the end of the
permutation, other samples every epoch), so every rank runs the same number of steps and the collectives stay in
lockstep. Test/evaluation shards keep every sample (sizes differ by at most one): there is no per-step
collective, only the summed counts once at the end, so the global metrics count each test sample exactly once.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from typing import Sequence

import torch
import torch.distributed as dist

from . import gpu_claim
from .knobs import ConfigError
from .process_lifetime import end_with_parent

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


class RankMismatch(RuntimeError):
    """Ranks that must hold the same value (a sampled architecture, a setting) hold different ones."""


def under_torchrun() -> bool:
    """True in a process torchrun started (the user's multi-node command, or a stage's own re-launch)."""
    return all(k in os.environ for k in TORCHRUN_VARS)


def world() -> World:
    """This process's place in the world; one process (rank 0 of 1) when no process group is initialised."""
    if not (dist.is_available() and dist.is_initialized()):
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", dist.get_rank())))


def is_main() -> bool:
    """Rank 0 (or the single process): the one that writes files and logs to MLflow."""
    return world().is_main


def init_from_env(device_name: str) -> torch.device | None:
    """Under torchrun: joins the process group and returns this rank's device (cuda:LOCAL_RANK with nccl, or cpu
    with gloo when `device_name` is cpu or no CUDA device is visible); None outside torchrun (single process)."""
    if not under_torchrun():
        return None
    local_rank = int(os.environ["LOCAL_RANK"])
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"runtime.gpus: local rank {local_rank} but only {torch.cuda.device_count()} CUDA "
                              "devices are visible on this node; lower --nproc-per-node")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo", timeout=datetime.timedelta(minutes=30),
                                **({"device_id": device} if use_cuda else {}))
    return device


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if world().distributed:
        dist.barrier()


# --- device-side reductions (no host read) -----------------------------------------------------------------------

def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sums `tensor` over the ranks in place, on its device; the host reads nothing."""
    if world().distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_reduce_mean_(tensor: torch.Tensor) -> torch.Tensor:
    """Averages `tensor` over the ranks in place, on its device; the host reads nothing."""
    w = world()
    if w.distributed:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(w.size)
    return tensor


def mean_of_host_values(values: Sequence[float], device: torch.device) -> list[float]:
    """The per-rank values (e.g. rewards of one round) averaged over the ranks: one all-reduce, one read."""
    if not world().distributed:
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64, device=device)
    return all_reduce_mean_(t).tolist()


def sum_of_host_value(value: float, device: torch.device) -> float:
    """A per-rank count (e.g. images skipped this epoch) summed over the ranks: one all-reduce, one read."""
    if not world().distributed:
        return float(value)
    return float(all_reduce_sum_(torch.tensor(float(value), dtype=torch.float64, device=device)))


def average_gradients(params: Sequence[torch.nn.Parameter]) -> None:
    """Averages the gradients that exist over the ranks with ONE all-reduce of their flat concatenation (a
    weight-sharing supernet: only the sampled ops have gradients, and every rank sampled the same ops, so the
    concatenations line up). No host read."""
    if not world().distributed:
        return
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    all_reduce_mean_(flat)
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset:offset + n].view_as(g))
        offset += n


def average_buffers(module: torch.nn.Module) -> None:
    """Averages the floating-point buffers (BatchNorm running statistics) over the ranks, so that eval-mode
    forwards agree on every rank. Averaging the ranks' EMAs of their local batch means gives the EMA of the global
    batch means exactly (the EMA is linear)."""
    if not world().distributed:
        return
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    if bufs:
        flat = torch.cat([b.reshape(-1) for b in bufs])
        all_reduce_mean_(flat)
        offset = 0
        for b in bufs:
            b.copy_(flat[offset:offset + b.numel()].view_as(b))
            offset += b.numel()


def broadcast_buffers(module: torch.nn.Module, src: int = 0) -> None:
    """Rank `src`'s buffers (BatchNorm running statistics) on every rank, as DDP does before each forward: after
    the last training step each rank still holds its own update, and the sharded test pass must use one set."""
    if not world().distributed:
        return
    for b in module.buffers():
        dist.broadcast(b, src=src)


# --- host values ---------------------------------------------------------------------------------------------

def broadcast_host_value(value, src: int = 0):
    """Rank `src`'s `value` (plain lists/tuples/numbers) on every rank: one broadcast_object_list. For results
    that kernels outside deterministic mode may compute slightly differently on each rank (a GPU-trained model's
    decisions), so that the ranks go on in lockstep."""
    if not world().distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def stable_hash(value) -> int:
    """A hash of a host value (nested lists/tuples/dicts of ints/strs) that is the same in every process."""
    return int.from_bytes(hashlib.sha256(repr(value).encode()).digest()[:7], "big")


def check_same(value, what: str) -> None:
    """Raises RankMismatch (one line) on every rank unless every rank holds the same `value` (compared by
    stable_hash). One small all-gather: call it per epoch or every N steps, never per step in a hot loop."""
    w = world()
    if not w.distributed:
        return
    hashes: list = [None] * w.size
    dist.all_gather_object(hashes, stable_hash(value))
    if len(set(hashes)) != 1:
        differing = [r for r, h in enumerate(hashes) if h != hashes[0]]
        raise RankMismatch(f"{what} differs between ranks (rank 0 vs rank(s) {differing}); every rank must seed "
                           "the strategy and its generators identically")


# --- sharding ------------------------------------------------------------------------------------------------

def shard(order: torch.Tensor, drop_remainder: bool = True, w: World | None = None) -> torch.Tensor:
    """This rank's part of an epoch's order (rows of a plan): positions rank, rank + W, rank + 2W, ... of the same
    permutation on every rank. drop_remainder: the last len % W positions are dropped, so every rank gets
    len // W (training: equal step counts); otherwise every position is kept (evaluation: each sample counted
    once, shard sizes differ by at most one)."""
    w = w or world()
    if w.size == 1:
        return order
    n = order.shape[0]
    if drop_remainder:
        order = order[: n - n % w.size]
    return order[w.rank :: w.size]


def shard_size(n: int, drop_remainder: bool = True, w: World | None = None) -> int:
    w = w or world()
    if w.size == 1:
        return n
    if drop_remainder:
        return n // w.size
    return len(range(w.rank, n, w.size))


# --- launching -----------------------------------------------------------------------------------------------

def check_gpus(gpus: int, device: str) -> None:
    """One-line ConfigError when `gpus` processes cannot run on this machine with `device`."""
    if gpus <= 1:
        return
    if device == "cpu":
        return  # N gloo processes on the CPU (tests, demos)
    if device not in ("auto", "cuda"):
        raise ConfigError(f"runtime.gpus: {gpus} processes need runtime.device auto or cuda (each rank takes "
                          f"cuda:LOCAL_RANK), got {device!r}")
    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if visible < gpus:
        raise ConfigError(f"runtime.gpus: {gpus} asked for but {visible} CUDA device(s) are visible; lower "
                          "runtime.gpus (or set runtime.device: cpu for gloo processes on the CPU)")


def relaunch_args(module: str, gpus: int) -> list[str]:
    """The torchrun command that runs `python -m module` in `gpus` processes on this machine."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={gpus}",
            "-m", module]


def maybe_relaunch(module: str, gpus: int, device: str) -> int | None:
    """Single-node multi-GPU: with gpus > 1 and not already under torchrun, runs the stage under torchrun and
    returns its exit code (the caller exits with it); None when this process should do the work itself.

    runtime.device auto on CUDA: this process first claims `gpus` free GPUs (ednas_core.gpu_claim, all or none,
    waiting while fewer are free) and holds them while torchrun runs with CUDA_VISIBLE_DEVICES set to them, so
    that queue workers of multi-GPU experiments take disjoint GPUs. `cuda` takes GPUs 0..N-1 of those visible."""
    if gpus <= 1 or under_torchrun():
        return None
    check_gpus(gpus, device)
    env = dict(os.environ)
    where = "gloo on the CPU" if device == "cpu" else "nccl"
    if device == "auto" and torch.cuda.is_available():
        claimed = gpu_claim.claim_from_env(gpus)
        env["CUDA_VISIBLE_DEVICES"] = gpu_claim.visible_devices_value(claimed)
        where += f" on {', '.join(g.describe() for g in claimed)}, held until the stage ends"
    print(f"{module.rsplit('.', 1)[-1]}: runtime.gpus {gpus}: re-launching under torchrun ({where})",
          file=sys.stderr, flush=True)
    try:
        # torchrun (and so its ranks) ends with this process: a killed stage leaves no ranks running on its GPUs
        return subprocess.call(relaunch_args(module, gpus), env=env, preexec_fn=end_with_parent)
    finally:
        gpu_claim.release_claim()
