"""The CIFAR-10 task (paper section 4.1): CNN cells searched on 25,000 / 25,000 training images (shared weights /
policy) and trained from scratch on all 50,000, tested on the 10,000 test images.

prepare-data reads CIFAR-10 from data.root (binary or python version); when missing it is downloaded with
torchvision (python version, md5-checked); offline, the stage stops with one line saying which files to place
where. The md5 of every raw file is recorded in the manifest and checked against the official sums where known."""

from __future__ import annotations

import socket
from pathlib import Path

from ..data import DataError, ImageDataset, load_cifar10
from ..data.cifar10 import BIN_DIR, PY_DIR
from ..data.prepared import md5sum
from ..repo import download_lock
from .image import ImageTask

# md5 of the official python-version files (as torchvision checks them after download)
OFFICIAL_PY_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
CIFAR_FILES = {
    BIN_DIR: [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"],
    PY_DIR: [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"],
}


def download_cifar10(root: Path) -> None:
    """torchvision's download of the python version (md5-checked); one-line DataError when offline."""
    from torchvision.datasets import CIFAR10

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(30)
    try:
        CIFAR10(str(root), train=True, download=True)
    except Exception as err:
        raise DataError(
            f"CIFAR-10 is not in {root} and could not be downloaded ({type(err).__name__}); offline, place "
            f"{BIN_DIR}/ (data_batch_1..5.bin, test_batch.bin) or {PY_DIR}/ (data_batch_1..5, test_batch, "
            f"batches.meta) from the official archive into {root}/"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def cifar_sources(root: Path) -> dict[str, str]:
    """md5 of the raw files that were read; an official python-version file with another md5 is corrupt."""
    for folder, names in CIFAR_FILES.items():
        if all((root / folder / n).is_file() for n in names):
            sums = {f"{folder}/{n}": md5sum(root / folder / n) for n in names}
            if folder == PY_DIR:
                bad = [n for n in names if sums[f"{folder}/{n}"] != OFFICIAL_PY_MD5[n]]
                if bad:
                    raise DataError(f"{root / folder}: md5 of {', '.join(bad)} differs from the official "
                                    "CIFAR-10 files; delete the folder and download it again")
            return sums
    return {}


class Cifar10Task(ImageTask):
    name = "cifar10"

    def load_raw(self, root: Path) -> tuple[ImageDataset, dict[str, str]]:
        if not any((root / folder).is_dir() for folder in CIFAR_FILES):
            with download_lock(root):
                if not any((root / folder).is_dir() for folder in CIFAR_FILES):
                    download_cifar10(root)
        return load_cifar10(root), cifar_sources(root)


CIFAR10 = Cifar10Task()
