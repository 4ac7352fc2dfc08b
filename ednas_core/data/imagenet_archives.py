"""The official ILSVRC-2012 archives turned into the ImageFolder layout that data/imagenet.py indexes, by
torchvision.datasets.ImageNet's own parsers (torchvision/datasets/imagenet.py), which check each archive's md5
against the official one before extracting it:

    root/ILSVRC2012_devkit_t12.tar.gz  -> root/meta.bin (class names and the wnid of each val image; torch.save'd
                                          tensors-free tuples, read back with weights_only=True)
    root/ILSVRC2012_img_train.tar      -> root/train/<wnid>/*.JPEG (each inner n*.tar extracted, then deleted)
    root/ILSVRC2012_img_val.tar        -> root/val/<wnid>/*.JPEG (sorted by the devkit's ground truth)

A split is extracted into a hidden folder (root/.train.partial) and renamed when complete, so an interrupted
extraction is started over, never indexed half-done. A split whose folder exists is left as it is. The archives
are kept (delete them yourself once the folders are there: about 150 GB)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Callable

from .dataset import DataError

DEVKIT = "ILSVRC2012_devkit_t12.tar.gz"
ARCHIVES = {"train": "ILSVRC2012_img_train.tar", "val": "ILSVRC2012_img_val.tar"}
META_FILE = "meta.bin"


def _say(message: str) -> None:
    print(f"prepare-data: {message}", file=sys.stderr, flush=True)


def _official(step: Callable[[], None], what: str) -> None:
    """Runs one torchvision parser; its errors (an archive missing, or not the official one by md5) as one line."""
    try:
        step()
    except RuntimeError as err:
        first = (str(err).strip().splitlines() or [""])[0]
        raise DataError(f"ImageNet {what}: {first} (torchvision checks the official md5); download it again from "
                        "https://image-net.org") from None


def extract_official_archives(root: Path, say: Callable[[str], None] = _say) -> list[str]:
    """Extracts the splits whose folder is missing from the official archives in `root`, when those are there;
    returns the splits extracted. A split without folder nor archive is left to the index's own error."""
    from torchvision.datasets import imagenet as tv

    root = Path(root)
    todo = [split for split, archive in ARCHIVES.items()
            if not (root / split).is_dir() and (root / archive).is_file()]
    if not todo:
        return []
    if "val" in todo and not (root / META_FILE).is_file():
        if not (root / DEVKIT).is_file():
            raise DataError(f"ImageNet {root / ARCHIVES['val']} needs {root / DEVKIT} (the wnid of each val image) "
                            "to be sorted into class folders; download the devkit from https://image-net.org (Development kit, Task 1 & 2) into "
                            f"{root}")
        say(f"reading {root / DEVKIT}")
        _official(lambda: tv.parse_devkit_archive(str(root), DEVKIT), DEVKIT)
    for split in todo:
        partial = root / f".{split}.partial"
        shutil.rmtree(partial, ignore_errors=True)  # an interrupted extraction starts over
        size = (root / ARCHIVES[split]).stat().st_size / 1e9
        say(f"extracting {root / ARCHIVES[split]} ({size:.3g} GB) into {root / split}/ (needs as much free space)")
        if split == "train":
            _official(lambda: tv.parse_train_archive(str(root), ARCHIVES[split], folder=partial.name), ARCHIVES[split])
        else:
            _official(lambda: tv.parse_val_archive(str(root), ARCHIVES[split], folder=partial.name), ARCHIVES[split])
        partial.rename(root / split)
    return todo
