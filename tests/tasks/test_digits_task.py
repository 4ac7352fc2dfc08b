"""The digits task's raw data: scikit-learn's digits, nothing read from data.root."""

from __future__ import annotations

import torch

from ednas_core.data import ImageDataset
from ednas_core.tasks.digits import DIGITS


# --- digits -------------------------------------------------------------------------------------------------

def test_digits_task_data(tmp_path):
    dataset, sources = DIGITS.load_raw(tmp_path / "unused")
    assert isinstance(dataset, ImageDataset)
    assert tuple(dataset.train_images.shape) == (1497, 1, 8, 8)
    assert tuple(dataset.test_images.shape) == (300, 1, 8, 8)
    assert dataset.train_images.dtype == torch.uint8 and dataset.test_images.dtype == torch.uint8
    assert dataset.num_classes == 10 and dataset.classes == [str(d) for d in range(10)]
    assert set(dataset.train_labels.tolist()) == set(range(10))
    assert int(dataset.train_images.max()) == 255  # 0..16 rescaled to 0..255
    (key, value), = sources.items()
    assert "load_digits" in key and value.startswith("scikit-learn ")
    assert not (tmp_path / "unused").exists()
