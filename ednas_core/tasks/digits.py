"""The digits task: scikit-learn's 1,797 8x8 grey handwritten digits (data/digits.py), shipped with scikit-learn,
as a CIFAR-10 stand-in small enough for the CPU demo (`make demo`) and the end-to-end tests; searched and trained
as CIFAR-10 is."""

from __future__ import annotations

from pathlib import Path

from ..data import ImageDataset
from ..data.digits import load_digits_dataset
from .image import ImageTask


class DigitsTask(ImageTask):
    name = "digits"

    def load_raw(self, root: Path) -> tuple[ImageDataset, dict[str, str]]:
        import sklearn

        return load_digits_dataset(), {"sklearn.datasets.load_digits": f"scikit-learn {sklearn.__version__}"}


DIGITS = DigitsTask()
