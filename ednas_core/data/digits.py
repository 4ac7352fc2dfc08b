"""The embedded demo dataset: scikit-learn's handwritten digits (1,797 8x8 grey images, 10 classes), shipped
inside the installed scikit-learn package, so the demo needs no download. Split 1,497 train / 300 test with a
fixed permutation (part of the dataset's definition, not of the run's seed)."""

from __future__ import annotations

import numpy as np
import torch

from .dataset import DataError, ImageDataset

DIGITS_TEST_SIZE = 300


def load_digits_dataset() -> ImageDataset:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits demo needs scikit-learn (installed with mlflow); run `make venv`") from None
    digits = load_digits()
    images = np.rint(digits.images * (255.0 / 16.0)).astype(np.uint8)[:, None]  # [N,1,8,8], 0..16 -> 0..255
    labels = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(labels))
    test, train = order[:DIGITS_TEST_SIZE], order[DIGITS_TEST_SIZE:]
    return ImageDataset(torch.from_numpy(images[train]), torch.from_numpy(labels[train]),
                        torch.from_numpy(images[test]), torch.from_numpy(labels[test]),
                        classes=[str(d) for d in range(10)])
