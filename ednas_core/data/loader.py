"""Seeded minibatches from uint8 tensors already on the target device; epoch e is the same whenever it runs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ednas_core import distributed
from ednas_core.data.augment import augment_batch, draw_augmentation

CROP_PAD = 4


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """The CPU generator of one epoch's order (and augmentation draws): the same for the same (seed, epoch), so
    that an epoch replays exactly on resume (seeds.py: why seed * 1_000_003 + epoch stays in range)."""
    return torch.Generator().manual_seed(seed * 1_000_003 + epoch)


class DeviceLoader:
    """Yields (normalized float images, labels) on the images' device; order and augmentation follow (seed, epoch)."""

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        mean: Sequence[float] | torch.Tensor,
        std: Sequence[float] | torch.Tensor,
        *,
        seed: int,
        shuffle: bool = True,
        augment: bool = False,
        cutout: int = 0,
        drop_last: bool = False,
        channels_last: bool = False,
        shard: str | None = None,
    ) -> None:
        """shard (several processes, ednas_core.distributed): None: every sample (one process, or each rank the
        whole set); "drop": this rank's slice of the epoch's order, the remainder dropped so that every rank has
        as many batches (training); "keep": this rank's slice with every sample kept (evaluation)."""
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 [N,C,H,W] images, got {images.dtype} {tuple(images.shape)}")
        if labels.shape != (images.shape[0],) or labels.device != images.device:
            raise ValueError(
                f"labels must be [{images.shape[0]}] on {images.device}, got {tuple(labels.shape)} on {labels.device}"
            )
        if shard not in (None, "drop", "keep"):
            raise ValueError(f"shard must be None, 'drop' or 'keep', got {shard!r}")
        if batch_size < 1 or cutout < 0:
            raise ValueError(f"need batch_size >= 1 and cutout >= 0, got {batch_size} and {cutout}")
        self.images = images
        self.labels = labels
        self.batch_size = batch_size
        self.mean = torch.as_tensor(mean, dtype=torch.float32).to(images.device)
        self.std = torch.as_tensor(std, dtype=torch.float32).to(images.device)
        self.seed = seed
        self.shuffle = shuffle
        self.augment = augment
        self.cutout = cutout
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.shard = shard

    @property
    def shard_samples(self) -> int:
        """Samples of this rank's shard of an epoch (all of them without sharding)."""
        n = self.images.shape[0]
        return n if self.shard is None else distributed.shard_size(n, self.shard == "drop")

    def __len__(self) -> int:
        n = self.shard_samples
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    @property
    def num_samples(self) -> int:
        """Samples yielded per epoch."""
        return min(len(self) * self.batch_size, self.shard_samples)

    def _plan(self, epoch: int) -> torch.Tensor:
        """Per position of the epoch, int64 columns (index, dy, dx, flip, cy, cx), drawn on the CPU, moved once."""
        n, _, h, w = self.images.shape
        generator = epoch_generator(self.seed, epoch)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        columns = [order[:, None]]
        if self.augment:
            draws = draw_augmentation(n, h, w, CROP_PAD, generator)
            columns += [draws["crop_offsets"], draws["flips"].long()[:, None], draws["cutout_centers"]]
        plan = torch.cat(columns, dim=1)
        if self.shard is not None:  # the same plan on every rank; this rank's rows of it
            plan = distributed.shard(plan, drop_remainder=self.shard == "drop")
        if self.images.device.type == "cuda":  # from pinned memory the copy is asynchronous: no host sync
            return plan.pin_memory().to(self.images.device, non_blocking=True)
        return plan

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        plan = self._plan(epoch)
        for start in range(0, len(self) * self.batch_size, self.batch_size):
            rows = plan[start : start + self.batch_size]
            index = rows[:, 0]
            x = augment_batch(
                self.images[index],
                self.mean,
                self.std,
                crop_offsets=rows[:, 1:3] if self.augment else None,
                flips=rows[:, 3].bool() if self.augment else None,
                cutout_centers=rows[:, 4:6] if self.augment and self.cutout > 0 else None,
                pad=CROP_PAD,
                cutout=self.cutout,
            )
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[index]
