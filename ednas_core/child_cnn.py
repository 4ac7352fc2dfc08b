"""The CNN child of the search: SGD steps of the weight-sharing network on sampled architectures, and the
policy reward (top-1 accuracy of a sampled child on one validation minibatch, shared weights in eval mode,
one no-grad forward). Metrics accumulate on the device and are read once per epoch.

Several processes (ednas_core.distributed): every rank trains the same sampled architecture on its shard of the
batch; the gradients that exist (the sampled ops') are averaged with one all-reduce per step (child_base), each
rank's reward is its shard's accuracy (the search loop averages the rewards over the ranks)."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Iterable, Iterator

import torch
from torch import nn

from . import distributed
from .child_base import SharedWeightsChild
from .device_sums import DeviceSums
from .config import DataConfig, SearchConfig
from .data import DeviceLoader, ImageDataset, split_indices
from .strategies import make_strategy
from .runtime import Runtime, seed_for
from .schedules import cosine_lr, set_lr, step_lr
from .search import EDNASSearch, SearchCallback
from .spaces import CNN_SPACE, Architecture
from .supernet.cnn import SearchNetwork

Batch = tuple[torch.Tensor, torch.Tensor]


class ImageChild(SharedWeightsChild):
    sample_unit = "images"

    def __init__(self, net: nn.Module, train_loader: DeviceLoader, valid_loader: DeviceLoader,
                 config: SearchConfig, runtime: Runtime):
        self.net = net
        self.train_loader = train_loader
        self.valid_loader = valid_loader
        self.config = config
        self.runtime = runtime
        self.optimizer = runtime.sgd(net.parameters(), lr=config.lr, momentum=config.momentum,
                                      nesterov=config.nesterov and config.momentum > 0,
                                      weight_decay=config.weight_decay)
        self.loss_fn = nn.CrossEntropyLoss()
        self.sums = DeviceSums(runtime.device)

    @classmethod
    def build(cls, dataset: ImageDataset, search: SearchConfig, data: DataConfig, runtime: Runtime) -> "ImageChild":
        """Splits the training set (train_portion for the weights, the rest for the policy) and puts it on the device."""
        train_idx, valid_idx = split_indices(len(dataset.train_labels), data.train_portion, runtime.seed)
        device = runtime.device
        images, labels = dataset.train_images.to(device), dataset.train_labels.to(device)
        # several processes: each rank its shard of both splits, as many batches on every rank (remainder dropped)
        common = dict(mean=dataset.mean, std=dataset.std, channels_last=runtime.channels_last,
                      shard="drop" if distributed.world().distributed else None)
        train_loader = DeviceLoader(images[train_idx.to(device)], labels[train_idx.to(device)], search.batch_size,
                                    seed=runtime.seed, shuffle=True, augment=search.augment, **common)
        valid_loader = DeviceLoader(images[valid_idx.to(device)], labels[valid_idx.to(device)],
                                    search.policy_batch_size, seed=runtime.seed + 1, shuffle=True, augment=False,
                                    **common)
        torch.manual_seed(seed_for(runtime.seed, "search-init"))
        net = cls.make_network(search, dataset).to(device)
        if runtime.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return cls(net, train_loader, valid_loader, search, runtime)

    @classmethod
    def make_network(cls, search: SearchConfig, dataset: ImageDataset) -> nn.Module:
        """The weight-sharing network the child trains (a subclass builds another space's supernet)."""
        return SearchNetwork(search.init_channels, search.layers, dataset.num_classes, dataset.in_channels)

    # --- phases -----------------------------------------------------------------------------------------

    def lr_at(self, epoch: int) -> float:
        c = self.config
        if c.lr_schedule == "step":
            return step_lr(c.lr, epoch, c.lr_step_epochs, c.lr_step_gamma)
        return cosine_lr(c.lr, c.lr_min, epoch, c.epochs)

    def start_epoch(self, epoch: int) -> float:
        lr = self.lr_at(epoch)
        set_lr(self.optimizer, lr)
        self.sums.reset()
        return lr

    def train_batches(self, epoch: int) -> Iterator[Batch]:
        return self.train_loader.epoch(epoch)

    def policy_batches(self, epoch: int) -> Iterator[Batch]:
        return self.valid_loader.epoch(epoch)


    def train_step(self, arch: Architecture, batch: Batch) -> None:
        images, labels = batch
        self._set_mode("train")
        with self.runtime.autocast():
            logits = self.net(images, arch)
            loss = self.loss_fn(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self._sync_gradients()  # several processes: the sampled ops' gradients averaged over the ranks
        nn.utils.clip_grad_norm_(self.net.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.sums.add(loss, labels, logits.detach().argmax(1))

    @torch.no_grad()
    def reward(self, arch: Architecture, batch: Batch) -> float:
        """Top-1 accuracy of `arch` on one batch: one no-grad forward in eval mode (reads one scalar)."""
        images, labels = batch
        self._set_mode("eval")
        self._sync_buffers()  # the ranks' BatchNorm statistics averaged before an eval-mode forward
        with self.runtime.autocast():
            logits = self.net(images, arch)
        return float((logits.argmax(1) == labels).float().mean())

    def epoch_metrics(self) -> dict[str, float]:
        """Child loss and accuracy of the epoch (the one device read per epoch)."""
        loss, acc = self.sums.means()
        return {"child_loss": loss, "child_acc": acc}

    @property
    def images_per_epoch(self) -> tuple[int, int]:
        return self.train_loader.num_samples, self.valid_loader.num_samples

    @property
    def steps_per_epoch(self) -> tuple[int, int]:
        return len(self.train_loader), len(self.valid_loader)


def cnn_search(dataset: ImageDataset, search: SearchConfig, data: DataConfig, runtime: Runtime,
               checkpoint_path: Path | None, callbacks: Iterable[SearchCallback] = (),
               settings: dict | None = None) -> EDNASSearch:
    """The whole CNN search, ready to run(): child network on the device, strategy on the host. `settings`
    joins the checkpoint fingerprint (e.g. the code version), so other settings are never resumed."""
    child = ImageChild.build(dataset, search, data, runtime)
    strategy = make_strategy(CNN_SPACE, search, seed_for(runtime.seed, "policy-init"))
    settings = {"data": asdict(data), "dataset": [len(dataset.train_labels), list(dataset.train_images.shape[1:])],
                **(settings or {})}
    return EDNASSearch(CNN_SPACE, child, strategy, search, runtime, checkpoint_path, callbacks, settings)
