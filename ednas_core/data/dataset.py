"""An in-memory image classification dataset (uint8 tensors) and a seeded train/valid split."""

from __future__ import annotations

from dataclasses import dataclass

import torch


class DataError(RuntimeError):
    """A data problem; the message is one line naming what is wrong and how to fix it."""


def channel_stats(images_uint8: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) std of uint8 [N,C,H,W] images on the 0..1 scale."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4:
        raise ValueError(f"expected uint8 [N,C,H,W] images, got {images_uint8.dtype} {tuple(images_uint8.shape)}")
    values = torch.arange(256, dtype=torch.float64) / 255.0
    means: list[float] = []
    stds: list[float] = []
    for c in range(images_uint8.shape[1]):
        counts = torch.bincount(images_uint8[:, c].reshape(-1).cpu(), minlength=256).double()
        total = counts.sum()
        mean = (counts * values).sum() / total
        var = (counts * (values - mean) ** 2).sum() / total
        means.append(float(mean))
        stds.append(float(var.sqrt()))
    return tuple(means), tuple(stds)


def _check_split(name: str, images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> None:
    if images.dtype != torch.uint8 or images.dim() != 4:
        raise DataError(
            f"{name} images must be uint8 [N,C,H,W], got {images.dtype} {tuple(images.shape)}; convert them"
        )
    if labels.dtype != torch.int64 or labels.shape != (images.shape[0],):
        raise DataError(
            f"{name} labels must be int64 [{images.shape[0]}], got {labels.dtype} {tuple(labels.shape)}; convert them"
        )
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise DataError(
            f"{name} labels must lie in 0..{num_classes - 1} (one per class name), got "
            f"{int(labels.min())}..{int(labels.max())}; fix the labels or the class list"
        )


@dataclass
class ImageDataset:
    """Train and test images (uint8 [N,C,H,W]) with int64 labels; mean/std default to the training stats."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        _check_split("train", self.train_images, self.train_labels, len(self.classes))
        _check_split("test", self.test_images, self.test_labels, len(self.classes))
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(
                f"train images are {tuple(self.train_images.shape[1:])} but test images are "
                f"{tuple(self.test_images.shape[1:])}; both splits need the same [C,H,W]"
            )
        if not self.mean or not self.std:
            mean, std = channel_stats(self.train_images)
            self.mean = self.mean or mean
            self.std = self.std or std
        if len(self.mean) != self.in_channels or len(self.std) != self.in_channels:
            raise DataError(
                f"mean/std have {len(self.mean)}/{len(self.std)} entries but the images have "
                f"{self.in_channels} channels; give one value per channel"
            )

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return self.train_images.shape[1]

    @property
    def image_size(self) -> int:
        """Side of the (square) images; the height when they are not square."""
        return self.train_images.shape[2]


def split_indices(n: int, train_portion: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of range(n): round(n * train_portion) indices for the weights, the rest for the policy."""
    if n < 0 or not 0.0 <= train_portion <= 1.0:
        raise ValueError(f"need n >= 0 and 0 <= train_portion <= 1, got n={n}, train_portion={train_portion}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train = round(n * train_portion)
    return order[:n_train], order[n_train:]
