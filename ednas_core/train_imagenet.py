"""Training a CNN genotype on ImageNet in the mobile setting (paper section 4.2; DARTS's train_imagenet.py): the
14-cell, C=48 network of models/imagenet.py with its auxiliary head, label smoothing 0.1, SGD at lr 0.1 times
0.97 per epoch after a 5-epoch linear warm-up, weight decay 3e-5, batch 200 per process, 250 epochs; DARTS's
augmentation (random resized crop, flip, colour jitter) decoded by worker processes; top-1 and top-5 error on
the 50,000 validation images (resize 256, centre crop 224) after every epoch. The loop, checkpoints, exact resume
and DDP are GenotypeTrainer's (train.py).

Several processes: each keeps batch_size, so the global batch is batch_size x processes, and with scale_lr the
learning rate grows with it (the linear scaling rule); the stage says the values used."""

from __future__ import annotations

from torch import nn

from . import distributed
from .config import ImageNetEvaluateConfig
from .data.imagenet import ImageNetBatches, ImageNetDataset, train_transform, val_transform
from .genotypes import Genotype
from .models.imagenet import ImageNetEvalNetwork
from .runtime import Runtime
from .schedules import exponential_lr_with_warmup, linear_scaled_batch
from .tasks.imagenet import PreparedImageNet
from .train import GenotypeTrainer, TrainEpoch


class ImageNetTrainer(GenotypeTrainer):
    top5 = True

    @staticmethod
    def data_size(data: PreparedImageNet) -> list:
        return [data.index.counts["train"], data.index.counts["val"], data.index.md5]

    @staticmethod
    def build_model(genotype: Genotype, data: PreparedImageNet, config: ImageNetEvaluateConfig) -> nn.Module:
        return ImageNetEvalNetwork(genotype, config.init_channels, config.layers, data.num_classes,
                                   auxiliary=config.auxiliary_weight > 0)

    @staticmethod
    def make_loaders(data: PreparedImageNet, config: ImageNetEvaluateConfig, runtime: Runtime,
                     sharded: bool) -> tuple[ImageNetBatches, ImageNetBatches]:
        common = dict(workers=config.workers, seed=runtime.seed, device=runtime.device,
                      channels_last=runtime.channels_last)

        def dataset(split: str, transform) -> ImageNetDataset:
            return ImageNetDataset(data.index, split, None, transform, data.root, config.on_unreadable)

        train = ImageNetBatches(dataset("train", train_transform(config.image_size)), config.batch_size,
                                shuffle=True, shard="drop" if sharded else None, **common)
        test = ImageNetBatches(dataset("val", val_transform(config.image_size, config.resize)), config.batch_size,
                               shuffle=False, shard="keep" if sharded else None, **common)
        return train, test

    def scaled(self) -> tuple[int, float]:
        """(global batch, base learning rate) with this many processes."""
        c = self.config
        batch, lr = linear_scaled_batch(c.batch_size, c.lr, self.world.size)
        return batch, lr if c.scale_lr else c.lr

    def lr_at(self, epoch: int) -> float:
        c = self.config
        return exponential_lr_with_warmup(self.scaled()[1], epoch, c.lr_gamma, c.warmup_epochs)

    def lr_note(self) -> str:
        c = self.config
        if not c.scale_lr:
            return f"learning rate {c.lr:g} as set, not scaled (imagenet.evaluate.scale_lr: false)"
        return f"learning rate {c.lr:g} x {self.world.size} = {self.scaled()[1]:g}, the linear scaling rule"

    def run_epoch(self, epoch: int) -> TrainEpoch:
        """GenotypeTrainer's epoch, with the images substituted for unreadable files counted (all ranks)."""
        before = self.train_loader.skipped + self.test_loader.skipped
        report = super().run_epoch(epoch)
        mine = float(self.train_loader.skipped + self.test_loader.skipped - before)
        report.metrics["skipped_images"] = distributed.sum_of_host_value(mine, self.runtime.device)
        return report
