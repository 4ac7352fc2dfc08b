"""Where and how tensors run: device resolution (`auto` = CUDA when present), bf16 autocast and channels_last
on CUDA only, cuDNN mode, and seeds derived per epoch so that any epoch can be replayed exactly on resume."""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterable

import torch
from torch import nn

from . import distributed, gpu_claim
from .config import ConfigError, RuntimeConfig
from .gpu_claim import GpuInfo
from .seeds import seed_for


def resolve_device(name: str) -> torch.device:
    """`auto`: CPU when no CUDA device is visible (the GPU lock folder is not touched). Otherwise it claims the
    first free visible GPU for the life of the process (ednas_core.gpu_claim: a flock per physical card under
    EDNAS_GPU_LOCK_DIR) and waits while every GPU is held by another process (bounded by EDNAS_GPU_WAIT_S), so
    that `dvc queue start -j N` on an N-GPU box gives each worker its own GPU. With a single visible GPU it claims
    too: two pipelines on a one-GPU box run one after the other instead of sharing its memory. The claimed GPU
    becomes torch's current device and one line on stderr names it; `claimed_gpu()` returns it.
    `cuda` / `cuda:N` never lock: the user chose the GPU, sharing it with other processes is allowed."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        [gpu] = gpu_claim.claim_from_env()
        torch.cuda.set_device(gpu.index)  # a bare "cuda" elsewhere then means the claimed GPU too
        print(f"runtime.device auto: using {gpu.describe()}, held until this process exits", file=sys.stderr,
              flush=True)
        return torch.device("cuda", gpu.index)
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"runtime.device: got {name!r}; expected auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"runtime.device: {name!r} asked for but no CUDA device is visible; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"runtime.device: {name!r} but only {torch.cuda.device_count()} CUDA devices are visible")
    elif device.type != "cpu":
        raise ConfigError(f"runtime.device: got {name!r}; expected auto, cpu, cuda or cuda:N")
    return device


def claimed_gpu() -> GpuInfo | None:
    """The GPU that `resolve_device("auto")` claimed in this process (index, uuid, name), or None."""
    return gpu_claim.current_claim()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def set_cuda_determinism(deterministic: bool) -> None:
    """deterministic: deterministic kernels where PyTorch has them (a warning names any op that has none),
    cuBLAS's fixed workspace, no cuDNN autotuning, no TF32. Otherwise the fast settings. Process-wide."""
    if deterministic:  # cuBLAS needs a fixed workspace for repeatable results
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    amp: bool
    channels_last: bool
    deterministic: bool
    seed: int
    fused_optimizer: bool = False
    compile: bool = False
    compile_backend: str | Callable[..., Any] = "inductor"  # tests count graphs with a counting backend

    @classmethod
    def from_config(cls, config: RuntimeConfig) -> "Runtime":
        # under torchrun (a stage's re-launch with runtime.gpus > 1, or the user's multi-node command): this
        # rank's device, cuda:LOCAL_RANK (nccl) or cpu (gloo); no GPU claim, torchrun placed the processes
        device = distributed.init_from_env(config.device) or resolve_device(config.device)
        on_cuda = device.type == "cuda"
        runtime = cls(device=device, amp=config.amp and on_cuda, channels_last=config.channels_last and on_cuda,
                      deterministic=config.deterministic, seed=config.seed,
                      fused_optimizer=config.fused_optimizer and on_cuda, compile=config.compile)
        if on_cuda:
            set_cuda_determinism(config.deterministic)
        return runtime

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def sgd(self, params: Iterable[nn.Parameter], **kwargs: Any) -> torch.optim.SGD:
        """SGD with the fused CUDA kernel when fused_optimizer is on; PyTorch's default implementation otherwise.

        Fused with momentum: every parameter's momentum buffer starts as zeros. PyTorch's fused step creates the
        buffers only at the first step on which every parameter has them missing, and fails on a step where a
        parameter gets its first gradient after others already have buffers ("expected Tensor ... got
        NoneType"), which is every early step of a weight-sharing network: an op gets its first gradient when
        it is first sampled. With dampening 0, as here, a zero buffer gives that first step the buffer PyTorch
        would have made (momentum * 0 + grad = grad), so the updates are the unfused ones."""
        if not self.fused_optimizer:
            return torch.optim.SGD(params, **kwargs)
        optimizer = torch.optim.SGD(params, fused=True, **kwargs)
        if optimizer.defaults["momentum"] != 0:
            if optimizer.defaults["dampening"] != 0:
                raise ValueError("fused SGD with momentum here starts its buffers at zero, which equals PyTorch's "
                                 "first step only with dampening 0")
            for group in optimizer.param_groups:
                for p in group["params"]:
                    optimizer.state[p]["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        return optimizer

    def compiled(self, module: nn.Module) -> Callable[..., Any]:
        """torch.compile(module) when compile is on, else the module itself. Keep the original module for
        state_dict (the compiled wrapper prefixes every key)."""
        return torch.compile(module, backend=self.compile_backend) if self.compile else module

    def seed_epoch(self, epoch: int, stream: str) -> None:
        """Reseeds torch's global generators (dropout, drop-path) for one epoch of one stream; with several
        processes each rank draws its own masks (its samples are other samples)."""
        w = distributed.world()
        torch.manual_seed(seed_for(self.seed, stream, epoch, *((w.rank,) if w.distributed else ())))

    def generator(self, *keys: object) -> torch.Generator:
        """A CPU generator for host-side draws (architectures), reproducible from the seed and keys."""
        return torch.Generator().manual_seed(seed_for(self.seed, *keys))

    def synchronize(self) -> None:
        """Waits for the device; called only at phase boundaries to time phases, never per step."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    @property
    def name(self) -> str:
        return device_name(self.device)

