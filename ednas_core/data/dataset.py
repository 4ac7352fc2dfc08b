"""An in-memory image classification dataset (uint8 tensors) and a seeded train/valid split."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..knobs import ConfigError


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


def split_sizes(n: int, train_portion: float) -> tuple[int, int]:
    """Sizes of split_indices's two parts: round(n * train_portion) for the weights, the rest for the policy."""
    n_train = round(n * train_portion)
    return n_train, n - n_train


def split_indices(n: int, train_portion: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded split of range(n): round(n * train_portion) indices for the weights, the rest for the policy.
    A train_portion strictly between 0 and 1 must leave both parts non-empty (ConfigError naming
    data.train_portion otherwise); 0 and 1 ask for an empty part on purpose."""
    if n < 0 or not 0.0 <= train_portion <= 1.0:
        raise ValueError(f"need n >= 0 and 0 <= train_portion <= 1, got n={n}, train_portion={train_portion}")
    if 0.0 < train_portion < 1.0:
        check_search_split(n, train_portion, 1, 1)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_train, _ = split_sizes(n, train_portion)
    return order[:n_train], order[n_train:]


def check_search_split(n: int, train_portion: float, batch_size: int, policy_batch_size: int,
                       prefix: str = "") -> tuple[int, int]:
    """The sizes of the search's two parts of n training images (split_sizes) if each fills at least one batch
    (batch_size images for the weights, policy_batch_size for the policy), else a one-line ConfigError naming
    data.train_portion, the sizes it gives and the range of values that works. `prefix` locates the batch size
    keys of the task in params.yaml ('digits.'), for the message."""
    n_train, n_policy = split_sizes(n, train_portion)
    if n_train >= batch_size and n_policy >= policy_batch_size:
        return n_train, n_policy
    need = (f"at least one batch ({prefix}search.batch_size {batch_size}, {prefix}search.policy_batch_size "
            f"{policy_batch_size})" if (batch_size, policy_batch_size) != (1, 1) else "at least one image")
    if batch_size + policy_batch_size > n:
        raise ConfigError(f"data.train_portion: no value splits {n} training images into two parts that each have "
                          f"{need}; lower the batch sizes or use more training images")
    low, high = _portion_range(n, batch_size, n - policy_batch_size)
    raise ConfigError(f"data.train_portion: got {train_portion!r}, which splits {n} training images into {n_train} "
                      f"for the weights and {n_policy} for the policy; each part needs {need}: "
                      f"use a value from {low} to {high}")


def _portion_range(n: int, low_count: int, high_count: int) -> tuple[str, str]:
    """Decimals lo <= hi, two significant digits of the smaller margin, with low_count <= round(n * lo) and
    round(n * hi) <= high_count (for 0 < low_count <= high_count < n): low_count / n rounded up, high_count / n
    rounded down."""
    margin = min(low_count / n, 1 - high_count / n)
    for decimals in range(max(2, 1 - math.floor(math.log10(margin))), 17):
        scale = 10**decimals
        lo, hi = math.ceil(low_count / n * scale) / scale, math.floor(high_count / n * scale) / scale
        if lo <= hi and round(n * lo) >= low_count and round(n * hi) <= high_count:
            return f"{lo:.{decimals}f}", f"{hi:.{decimals}f}"
    return f"{low_count}/{n}", f"{high_count}/{n}"
