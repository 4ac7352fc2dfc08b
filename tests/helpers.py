"""Test helpers: small generated image data the tests make themselves, tiny configurations, a CPU runtime."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import warnings
from pathlib import Path
from typing import Iterator

import pytest
import torch

from ednas_core.config import EvaluateConfig, RuntimeConfig, SearchConfig
from ednas_core.data import ImageDataset
from ednas_core.epochs import EpochCallback
from ednas_core.runtime import Runtime
from ednas_core.search import SearchCallback

# Tiny tensors run fastest on one thread; more threads only contend with each other on a 2-core machine.
torch.set_num_threads(1)


def make_pattern_images(n: int, classes: int, size: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """RGB images whose class sets the colour and the quadrant of a bright square, over uniform noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % classes
    labels = labels[torch.randperm(n, generator=g)]
    images = torch.randint(0, 120, (n, 3, size, size), generator=g, dtype=torch.int64)
    half = size // 2
    for k in range(classes):
        idx = labels == k
        r0, c0 = (k // 2 % 2) * half, (k % 2) * half
        images[idx, k % 3, r0 : r0 + half, c0 : c0 + half] += 120
    return images.clamp(0, 255).to(torch.uint8), labels


def make_pattern_dataset(n_train: int = 256, n_test: int = 128, classes: int = 4, size: int = 8,
                         seed: int = 0) -> ImageDataset:
    x, y = make_pattern_images(n_train, classes, size, seed)
    tx, ty = make_pattern_images(n_test, classes, size, seed + 1)
    return ImageDataset(x, y, tx, ty, classes=[f"class{k}" for k in range(classes)])


def tiny_search_config(**overrides) -> SearchConfig:
    base = SearchConfig(epochs=3, batch_size=32, policy_batch_size=32, layers=3, init_channels=4, lr=0.05,
                        policy_lr=0.01)
    return dataclasses.replace(base, **overrides)


def tiny_eval_config(**overrides) -> EvaluateConfig:
    base = EvaluateConfig(epochs=3, batch_size=32, layers=3, init_channels=4, cutout=4, drop_path=0.1)
    return dataclasses.replace(base, **overrides)


def make_runtime(device: str, seed: int = 0, **overrides) -> Runtime:
    return Runtime.from_config(RuntimeConfig(device=device, seed=seed, **overrides))


def cpu_runtime(seed: int = 0) -> Runtime:
    return make_runtime("cpu", seed)


# CPU always; CUDA where present (the sync checks that matter most run there)
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="no CUDA device on this machine"))]

HOST_READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@contextlib.contextmanager
def host_reads(device: torch.device) -> Iterator[list[str]]:
    """Collects every read of a tensor value by the host inside the block (check the list after the block).
    CUDA: torch's sync debug mode, which flags every synchronising CUDA call (device-to-host copies, blocking
    host-to-device copies, ...). CPU: every Tensor method that hands a value to Python (item, tolist, numpy,
    bool/float/int) is recorded; on CPU those are not syncs, but the same calls would be on a GPU. Only code
    that touches no CPU-resident tensor of its own (the policy lives on the CPU) can be checked on CPU."""
    reads: list[str] = []
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                yield reads
            finally:
                torch.cuda.set_sync_debug_mode("default")
        # torch 2.11 also warns, once, that the mode "is a prototype feature": a notice, not a sync
        reads.extend(str(w.message) for w in caught
                     if "synchroniz" in str(w.message) and "is a prototype feature" not in str(w.message))
        return
    originals = {name: getattr(torch.Tensor, name) for name in HOST_READS}

    def recording(name: str, original):
        def read(self, *args, **kwargs):
            reads.append(f"Tensor.{name}")
            return original(self, *args, **kwargs)
        return read

    for name, original in originals.items():
        setattr(torch.Tensor, name, recording(name, original))
    try:
        yield reads
    finally:
        for name, original in originals.items():
            setattr(torch.Tensor, name, original)


class StopAfter(EpochCallback):
    """Simulates a kill right after epoch `epoch`'s checkpoint is written (raises StopAfter.Killed)."""

    class Killed(Exception):
        pass

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_epoch_end(self, report):
        if report.epoch == self.epoch:
            raise self.Killed


class Recorder(EpochCallback):
    """Records every callback: reports, progress calls and the epochs a resume started from."""

    def __init__(self):
        self.reports, self.progress, self.resumed = [], [], None
        self.units = {}  # phase -> what its steps are

    def on_resume(self, history):
        self.resumed = [r.epoch for r in history]

    def on_progress(self, phase, step, total, unit="batch"):
        self.progress.append((phase, step, total))
        self.units[phase] = unit

    def on_epoch_end(self, report):
        self.reports.append(report)


# --- NAS-Bench-201 ----------------------------------------------------------------------------------------------

NB201_TABLES = Path(os.environ["EDNAS_DATA_ROOT"]) / "nb201" if os.environ.get("EDNAS_DATA_ROOT") else None
needs_nb201_table = pytest.mark.skipif(NB201_TABLES is None,
                                       reason="EDNAS_DATA_ROOT is unset (NB201 tables at $EDNAS_DATA_ROOT/nb201)")


def nb201_search_config(**overrides):
    """The nb201 task's search settings (params.yaml's defaults) with `overrides`."""
    from ednas_core.config import nb201_search_defaults

    return dataclasses.replace(nb201_search_defaults(), **overrides)


def write_pattern_imagefolder(root: Path, classes: int = 6, train_per_class: int = 10, val_per_class: int = 3,
                              size: int = 40, seed: int = 0) -> Path:
    """An ImageNet layout (root/{train,val}/<wnid>/*.JPEG) of small JPEGs whose class is its dominant colour
    channel and brightness plus noise: a network learns it within a few steps. Returns root."""
    from torchvision.io import encode_jpeg

    generator = torch.Generator().manual_seed(seed)
    for split, per_class in (("train", train_per_class), ("val", val_per_class)):
        for c in range(classes):
            folder = root / split / f"n{c:08d}"
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                image = torch.randint(0, 96, (3, size, size), generator=generator)
                image[c % 3] += 80 + 60 * (c // 3)
                (folder / f"n{c:08d}_{k}.JPEG").write_bytes(
                    encode_jpeg(image.clamp(0, 255).to(torch.uint8), quality=90).numpy().tobytes())
    return root


class NoRun:
    """Stands in for tracking.StageRun: every logging call is accepted and dropped."""

    run_id = "no-mlflow-run"

    def __init__(self, *args, **kwargs):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


class NoFigures(SearchCallback):
    """Stands in for the search stage's figure callback: draws nothing."""

    def __init__(self, *args, **kwargs):
        pass


def stages_without_tracking(mp: pytest.MonkeyPatch, root: Path) -> None:
    """Runs the prepare-data, search and derive stages' main() in `root` as DVC would (cwd, DVC_ROOT), with MLflow
    and the search's figure callback replaced by no-ops."""
    from stages import derive, prepare_data, search

    mp.chdir(root)
    mp.setenv("DVC_ROOT", str(root))
    for module in (prepare_data, search, derive):
        mp.setattr(module, "StageRun", NoRun)
    mp.setattr(search, "MLflowPolicyFigures", NoFigures)
