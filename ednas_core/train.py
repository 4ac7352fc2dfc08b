"""Training a CNN genotype from scratch (the paper's evaluation): SGD with cosine learning rate, auxiliary
head, drop-path growing linearly over the epochs, cutout, gradient clipping; top-1 test error every epoch.
Checkpointed atomically every epoch and resumed exactly, as the search is.

Several processes (torchrun, ednas_core.distributed): the model in DistributedDataParallel, each rank trains on
its shard of the epoch's order with evaluate.batch_size (global batch = batch_size x world size; BatchNorm
statistics per rank, as usual with DDP), the loss and accuracy sums are reduced on the device, the test set is
sharded and its counts reduced; rank 0 alone writes the checkpoint."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed

from .config import EvaluateConfig
from .data import DeviceLoader, ImageDataset
from .device_sums import DeviceSums
from .genotypes import Genotype
from .metrics import topk_correct
from .models.cnn import EvalNetwork, count_parameters
from .runtime import Runtime, seed_for
from .schedules import cosine_lr, set_lr
from .epochs import CheckpointedLoop, EpochCallback, NonFiniteError, fingerprint


@dataclass
class TrainEpoch:
    epoch: int
    epochs: int
    metrics: dict[str, float]


TrainCallback = EpochCallback  # on_resume(history), on_progress(phase, step, total, unit), on_epoch_end(TrainEpoch)


@dataclass
class TrainResult:
    test_error: float        # % top-1 error on the test set after the last epoch
    test_acc: float
    params: int              # auxiliary head excluded
    history: list[TrainEpoch]
    model: nn.Module         # EvalNetwork, train_nb201.NB201EvalNetwork or models.imagenet.ImageNetEvalNetwork
    top5_error: float | None = None  # % top-5 error, for trainers that report it (ImageNet)


class GenotypeTrainer(CheckpointedLoop[TrainEpoch]):
    """A subclass trains another network (build_model), on other data (make_loaders, data_size), with another
    schedule (lr_at) or also counts top-5 accuracy (top5)."""

    what = "training run"
    report_type = TrainEpoch
    top5 = False

    def __init__(self, genotype: Genotype, dataset: ImageDataset, config: EvaluateConfig, runtime: Runtime,
                 checkpoint_path: Path | None = None, callbacks: Iterable[TrainCallback] = (),
                 settings: dict | None = None):
        super().__init__(config.epochs, checkpoint_path, callbacks,
                         fingerprint(evaluate=asdict(config), seed=runtime.seed, genotype=genotype.to_dict(),
                                     data=self.data_size(dataset), **(settings or {})))
        self.config = config
        self.runtime = runtime
        device = runtime.device
        torch.manual_seed(seed_for(runtime.seed, "evaluate-init"))
        self.model = self.build_model(genotype, dataset, config).to(device)
        if runtime.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.params = count_parameters(self.model)
        # the model itself unless runtime.compile; test evaluation runs it without DDP (its shards are uneven)
        self.eval_forward = runtime.compiled(self.model)
        self.world = world = distributed.world()
        if world.distributed:  # the same initial weights on every rank (DDP broadcasts rank 0's), gradients averaged
            self.forward = DistributedDataParallel(
                self.eval_forward, device_ids=[device.index] if device.type == "cuda" else None)
            if world.is_main:
                print(f"{self.what}: {world.size} processes x batch {config.batch_size} = global batch "
                      f"{world.size * config.batch_size} ({self.lr_note()})", file=sys.stderr, flush=True)
        else:
            self.forward = self.eval_forward
        self.train_loader, self.test_loader = self.make_loaders(dataset, config, runtime, world.distributed)
        self.optimizer = runtime.sgd(self.model.parameters(), lr=self.lr_at(0), momentum=config.momentum,
                                      nesterov=config.nesterov and config.momentum > 0,
                                      weight_decay=config.weight_decay)
        # training with label smoothing where the recipe has it (ImageNet); the test loss is the plain one
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=getattr(config, "label_smoothing", 0.0))
        self.test_loss_fn = nn.CrossEntropyLoss()
        self.sums = DeviceSums(device)  # the epoch's training loss and accuracy, added to by train_step

    @staticmethod
    def data_size(dataset: ImageDataset) -> list[int]:
        """What the checkpoint fingerprint records of the data (its sizes)."""
        return [len(dataset.train_labels), len(dataset.test_labels)]

    @staticmethod
    def make_loaders(dataset: ImageDataset, config: EvaluateConfig, runtime: Runtime,
                     sharded: bool) -> tuple[DeviceLoader, DeviceLoader]:
        """(training, test) batches on the device; sharded (several processes): each rank its slice of the
        epoch's order, the training remainder dropped, every test sample kept."""
        device = runtime.device
        common = dict(mean=dataset.mean, std=dataset.std, channels_last=runtime.channels_last)
        shard = dict(train="drop", test="keep") if sharded else dict(train=None, test=None)
        train = DeviceLoader(dataset.train_images.to(device), dataset.train_labels.to(device), config.batch_size,
                             seed=runtime.seed, shuffle=True, augment=config.augment,
                             cutout=getattr(config, "cutout", 0), shard=shard["train"], **common)
        test = DeviceLoader(dataset.test_images.to(device), dataset.test_labels.to(device), config.batch_size,
                            seed=runtime.seed, shuffle=False, augment=False, shard=shard["test"], **common)
        return train, test

    def lr_at(self, epoch: int) -> float:
        """The learning rate of `epoch` (cosine annealing to lr_min)."""
        c = self.config
        return cosine_lr(c.lr, c.lr_min, epoch, c.epochs)

    def lr_note(self) -> str:
        """What several processes do to the learning rate, for the log."""
        return "learning rate as set, not scaled"

    @staticmethod
    def build_model(genotype: Genotype, dataset: ImageDataset, config: EvaluateConfig) -> nn.Module:
        """The network trained: forward(images) -> (logits, auxiliary logits or None), with a drop_path_prob."""
        return EvalNetwork(genotype, config.init_channels, config.layers, dataset.num_classes,
                           auxiliary=config.auxiliary_weight > 0, in_channels=dataset.in_channels)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])

    def run(self) -> TrainResult:
        self.run_epochs()
        last = self.history[-1].metrics if self.history else self.evaluate()
        top5 = 100.0 - last["test_top5_acc"] * 100.0 if "test_top5_acc" in last else None
        return TrainResult(test_error=100.0 - last["test_acc"] * 100.0, test_acc=last["test_acc"],
                           params=self.params, history=self.history, model=self.model, top5_error=top5)

    def run_epoch(self, epoch: int) -> TrainEpoch:
        c, rt = self.config, self.runtime
        rt.seed_epoch(epoch, "train")
        lr = self.lr_at(epoch)
        set_lr(self.optimizer, lr)
        self.model.drop_path_prob = getattr(c, "drop_path", 0.0) * epoch / c.epochs
        self.model.train()
        self.sums.reset()
        total = len(self.train_loader)
        self.progress("train", 0, total)
        t0 = time.perf_counter()
        for i, (images, labels) in enumerate(self.train_loader.epoch(epoch), 1):
            self.train_step(images, labels)
            self.progress("train", i, total)
        rt.synchronize()
        train_time = time.perf_counter() - t0
        n = self.train_loader.num_samples * self.world.size  # every rank's shard
        train_loss, train_acc = self.sums.means()
        if not math.isfinite(train_loss):
            raise NonFiniteError(f"evaluate epoch {epoch + 1}: training loss is {train_loss}; "
                                 "lower evaluate.lr or evaluate.grad_clip")
        metrics = {"train_loss": train_loss, "train_acc": train_acc, "lr": lr,
                   "drop_path_prob": self.model.drop_path_prob, "epoch_time_s": train_time,
                   "train_images_per_s": n / train_time if train_time > 0 else math.nan}
        metrics.update(self.evaluate())
        return TrainEpoch(epoch=epoch, epochs=c.epochs, metrics=metrics)

    def train_step(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        """One SGD step; loss and correct predictions accumulate on the device (nothing is read on the host)."""
        c = self.config
        with self.runtime.autocast():
            logits, aux_logits = self.forward(images)
            loss = self.loss_fn(logits, labels)
            if aux_logits is not None:
                loss = loss + c.auxiliary_weight * self.loss_fn(aux_logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if getattr(c, "grad_clip", None):  # a recipe without clipping (NAS-Bench-201's) has no grad_clip
            nn.utils.clip_grad_norm_(self.model.parameters(), c.grad_clip)
        self.optimizer.step()
        self.sums.add(loss, labels, logits.detach().argmax(1))

    @torch.no_grad()
    def evaluate(self) -> dict[str, float]:
        """Top-1 (and with `top5` top-5) accuracy and loss on the test set (each rank its shard; the counts summed
        over the ranks)."""
        self.model.eval()
        distributed.broadcast_buffers(self.model)  # rank 0's running statistics on every rank (as DDP's forward)
        sums = DeviceSums(self.runtime.device)
        total = len(self.test_loader)
        self.progress("test", 0, total)
        for i, (images, labels) in enumerate(self.test_loader.epoch(0), 1):
            with self.runtime.autocast():
                logits, _ = self.eval_forward(images)
            top5 = topk_correct(logits, labels, (5,))[5] if self.top5 else None
            sums.add(self.test_loss_fn(logits.float(), labels), labels, logits.argmax(1), top5)
            self.progress("test", i, total)
        test_loss, test_acc, test_top5_acc = sums.means_with_top5()
        return {"test_loss": test_loss, "test_acc": test_acc, **({"test_top5_acc": test_top5_acc} if self.top5 else {})}
