"""ILSVRC-2012 (ImageNet-1k) read from its image folders: an index of the files (no image decoded), the paper's
1M / 0.2M search split, a dataset that decodes in DataLoader workers, DARTS's transforms and a seeded loader.

Layout (torchvision's ImageFolder), under one root folder:

    root/train/<wnid>/*.JPEG   1,281,167 images in 1,000 class folders: ILSVRC2012_img_train.tar holds one
                               n*.tar per class, each extracted into a folder of its name
    root/val/<wnid>/*.JPEG     50,000 images sorted into the same 1,000 class folders: ILSVRC2012_img_val.tar is
                               flat, the well-known valprep.sh (run inside val/) sorts it

Files ending in .JPEG/.jpg/.jpeg/.png (any case) directly inside a class folder are the images; names starting
with '.' and other files are ignored. Classes are the sorted wnids of train/ (label = position). ImageNet cannot
be downloaded automatically (https://image-net.org, after registration), so prepare-data writes only the index
(INDEX_FILE, JSON, a few tens of MB) and the images stay where the user put them.

Batches stay uint8 on the host (pinned); float conversion and normalisation happen on the device in batches
(DeviceNormalize), as the CIFAR-10 DeviceLoader does.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .. import distributed
from ..checkpoint import atomic_write_text
from .augment import augment_batch
from .dataset import DataError
from .loader import epoch_generator

if TYPE_CHECKING:
    from torchvision.transforms import v2

# torchvision is imported where images are decoded or transformed, not here: `import torchvision` costs a stage
# 1.3 s of start-up (it loads torch._dynamo through torchvision.models), and only the ImageNet task uses it

SPLITS = ("train", "val")
IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")  # compared with the lower-cased name
INDEX_FILE = "imagenet_index.json"
INDEX_FORMAT = "ednas-imagenet-index-v1"
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAPER_TRAIN_IMAGES = 1_000_000  # the paper's search split of the training set: shared weights ...
PAPER_POLICY_IMAGES = 200_000   # ... and policy
TRAIN_SIZE, RESIZE = 224, 256

_URL = "https://image-net.org"
_VALPREP_SHORT = "sort val/ into <wnid> folders with the well-known valprep.sh run inside val/"
_VALPREP = f"{_VALPREP_SHORT} (https://raw.githubusercontent.com/soumith/imagenetloader.torch/master/valprep.sh)"
_RERUN = "rerun `dvc repro prepare-data`"
_SHOWN = 5  # wnids named in an error


def _how_to_get(root: Path) -> str:
    return (f"ImageNet cannot be downloaded automatically: register at {_URL}, download ILSVRC2012_img_train.tar "
            f"and ILSVRC2012_img_val.tar, extract them to {root}/train/<wnid>/*.JPEG (each inner n*.tar into a "
            f"folder of its name) and {root}/val/<wnid>/*.JPEG ({_VALPREP_SHORT}), or place both archives and "
            f"ILSVRC2012_devkit_t12.tar.gz in {root}/ and the prepare-data stage extracts them")


def _first(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown if len(names) <= _SHOWN else f"{shown} and {len(names) - _SHOWN:,} more"


@dataclass(frozen=True, eq=False)
class ImageNetSplit:
    """One split's image files in index order (class, then file name). Numpy arrays rather than Python lists, so
    that DataLoader workers share them: a million str objects get copied page by page as workers touch them."""

    names: np.ndarray   # file names inside their class folder, os.fsencode'd bytes (numpy 'S')
    labels: np.ndarray  # int64 class index into ImageNetIndex.classes, non-decreasing
    sizes: np.ndarray   # int64 file sizes in bytes

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class ImageNetIndex:
    """The classes (sorted wnids) and the image files of both splits, relative to the ImageNet root, with their
    byte sizes; `md5` is that of the canonical JSON of this content (`content_md5`), the same on any machine.
    The md5 covers names and sizes, not pixels: re-index when files are replaced."""

    classes: tuple[str, ...]
    splits: Mapping[str, ImageNetSplit]
    md5: str

    @property
    def counts(self) -> dict[str, int]:
        return {split: len(self.splits[split]) for split in SPLITS}

    def relative_path(self, split: str, i: int) -> str:
        """'<split>/<wnid>/<file name>' of file i of the split."""
        files = self.splits[split]
        return f"{split}/{self.classes[int(files.labels[i])]}/{os.fsdecode(files.names[i])}"

    def files(self, split: str) -> Iterator[tuple[str, int, int]]:
        """(relative path, class index, byte size) of every file of the split, in index order."""
        files = self.splits[split]
        for i in range(len(files)):
            yield self.relative_path(split, i), int(files.labels[i]), int(files.sizes[i])


# The index's content as JSON: per split, one list per class (in class order) of [file name, byte size].
_Files = dict[str, list[list[list[Any]]]]


def content_md5(classes: Sequence[str], files: _Files) -> str:
    """md5 of the compact JSON of {"classes": ..., "files": ...}: sorted, relative, machine-independent."""
    text = json.dumps({"classes": list(classes), "files": files}, separators=(",", ":"))
    return hashlib.md5(text.encode()).hexdigest()


def _make_index(classes: Sequence[str], files: _Files) -> ImageNetIndex:
    splits = {}
    for split in SPLITS:
        per_class = files[split]
        names = [os.fsencode(name) for entries in per_class for name, _ in entries]
        splits[split] = ImageNetSplit(
            names=np.array(names, dtype=np.bytes_) if names else np.zeros(0, dtype="S1"),
            labels=np.repeat(np.arange(len(classes), dtype=np.int64), [len(entries) for entries in per_class]),
            sizes=np.array([size for entries in per_class for _, size in entries], dtype=np.int64))
    return ImageNetIndex(classes=tuple(classes), splits=splits, md5=content_md5(classes, files))


def _files_json(index: ImageNetIndex) -> _Files:
    out: _Files = {}
    for split in SPLITS:
        files = index.splits[split]
        bounds = np.searchsorted(files.labels, np.arange(len(index.classes) + 1))
        names = [os.fsdecode(name) for name in files.names.tolist()]
        sizes = files.sizes.tolist()
        out[split] = [[[names[i], sizes[i]] for i in range(bounds[c], bounds[c + 1])]
                      for c in range(len(index.classes))]
    return out


# ---------------------------------------------------------------------------------------------------- indexing


def _scan_class(folder: str) -> list[list[Any]]:
    with os.scandir(folder) as entries:
        found = [[entry.name, entry.stat().st_size] for entry in entries
                 if not entry.name.startswith(".") and entry.name.lower().endswith(IMAGE_EXTENSIONS)
                 and entry.is_file()]
    return sorted(found)


def _scan_split(root: Path, split: str) -> dict[str, list[list[Any]]]:
    """wnid -> sorted [name, size] of every (non-hidden) class folder of root/split, empty ones included."""
    folder = root / split
    if not folder.is_dir():
        fix = (f"extract ILSVRC2012_img_val.tar into {folder} and {_VALPREP}" if split == "val" else
               f"extract ILSVRC2012_img_train.tar into {folder}, each inner n*.tar into a folder of its name")
        raise DataError(f"ImageNet split folder {folder} is missing (expected {folder}/<wnid>/*.JPEG); {fix}")
    classes: dict[str, list[list[Any]]] = {}
    loose = archives = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith("."):
                continue
            if entry.is_dir():
                classes[entry.name] = _scan_class(entry.path)
            elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
                loose += 1
            elif entry.name.endswith(".tar"):
                archives += 1
    if loose and split == "val":
        raise DataError(f"ImageNet {folder} holds {loose:,} images outside class folders: the val images must be "
                        f"sorted into <wnid> folders like train's; {_VALPREP}")
    if loose:
        raise DataError(f"ImageNet {folder} holds {loose:,} images outside class folders (they belong in "
                        f"{folder}/<wnid>/); move them into their class folders or delete them")
    if not classes:
        fix = (f"it holds {archives:,} .tar archives: extract each n*.tar into a folder of its name and delete "
               "the archive" if archives else _how_to_get(root))
        raise DataError(f"ImageNet split folder {folder} holds no class folders and no image files "
                        f"(expected {folder}/<wnid>/*.JPEG); {fix}")
    return classes


def index_imagenet(root: Path) -> ImageNetIndex:
    """Index root/train/<wnid>/* and root/val/<wnid>/* (module docstring) without decoding any image; a missing
    or incomplete layout gets a one-line DataError saying what to place where."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"ImageNet not found: {root} is not a folder; {_how_to_get(root)}")
    found = {split: _scan_split(root, split) for split in SPLITS}
    train, val = set(found["train"]), set(found["val"])
    if extra := sorted(val - train):
        raise DataError(f"ImageNet {root / 'val'} has {len(extra):,} class folders that {root / 'train'} lacks: "
                        f"{_first(extra)}; val must hold exactly train's <wnid> folders: remove the strays, or "
                        f"extract the missing train classes")
    if missing := sorted(train - val):
        raise DataError(f"ImageNet {root / 'val'} lacks the folders of {len(missing):,} of the {len(train):,} "
                        f"train classes: {_first(missing)}; every train class needs its val folder: {_VALPREP}")
    for split in SPLITS:
        if empty := sorted(wnid for wnid, files in found[split].items() if not files):
            raise DataError(f"ImageNet has {len(empty):,} class folders without images (.JPEG/.jpg/.jpeg/.png) in "
                            f"{root / split}: {_first(empty)}; extract those classes again (an interrupted "
                            f"extraction leaves empty folders) or delete the folders in both splits")
    classes = sorted(train)
    return _make_index(classes, {split: [found[split][wnid] for wnid in classes] for split in SPLITS})


# ------------------------------------------------------------------------------------------------- save / load


def save_index(index: ImageNetIndex, path: Path) -> str:
    """Write the index as JSON (atomically) and return its md5 (also recorded in the file)."""
    payload = {"format": INDEX_FORMAT, "md5": index.md5, "counts": index.counts, "classes": list(index.classes),
               "files": _files_json(index)}
    atomic_write_text(Path(path), json.dumps(payload, separators=(",", ":")) + "\n")
    return index.md5


def _well_formed(classes: Any, files: Any) -> bool:
    """Whether parsed JSON has the layout content_md5 hashes: unique class names, and per split one list per
    class of [non-empty file name, byte size] pairs."""
    def entry(e: Any) -> bool:
        return (isinstance(e, list) and len(e) == 2 and isinstance(e[0], str) and e[0] != "" and "/" not in e[0]
                and isinstance(e[1], int) and not isinstance(e[1], bool) and e[1] >= 0)

    return (isinstance(classes, list) and len(classes) > 0 and all(isinstance(c, str) and c for c in classes)
            and len(set(classes)) == len(classes) and isinstance(files, dict) and set(files) == set(SPLITS)
            and all(isinstance(files[s], list) and len(files[s]) == len(classes) for s in SPLITS)
            and all(isinstance(per_class, list) and all(map(entry, per_class))
                    for s in SPLITS for per_class in files[s]))


def load_index(path: Path) -> ImageNetIndex:
    """Read an index written by save_index; a missing, damaged (md5 mismatch) or foreign file gets a one-line
    DataError saying to rerun prepare-data."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"no ImageNet index at {path}; run the prepare-data stage (dvc repro prepare-data) with "
                        "the ImageNet folders in place")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise DataError(f"ImageNet index {path} is not valid JSON (truncated or damaged); {_RERUN}") from None
    if not isinstance(data, dict) or data.get("format") != INDEX_FORMAT:
        raise DataError(f"{path} is not an ImageNet index of this project (its \"format\" is not "
                        f"{INDEX_FORMAT!r}); delete it and {_RERUN}")
    classes, files = data.get("classes"), data.get("files")
    if content_md5(classes, files) != data.get("md5"):
        raise DataError(f"ImageNet index {path} is damaged: its content does not match the md5 it records; "
                        f"{_RERUN}")
    if not _well_formed(classes, files):
        raise DataError(f"ImageNet index {path} matches its md5 but not the index layout (made by other code); "
                        f"delete it and {_RERUN}")
    index = _make_index(classes, files)
    if data.get("counts") != index.counts:
        raise DataError(f"ImageNet index {path} records counts {data.get('counts')} but lists {index.counts} "
                        f"(made by other code); delete it and {_RERUN}")
    return index


# --------------------------------------------------------------------------------------------------- the split


def search_split(index: ImageNetIndex, train_images: int = PAPER_TRAIN_IMAGES,
                 policy_images: int = PAPER_POLICY_IMAGES, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Disjoint int64 ids into the train split, deterministic by seed: `train_images` for the shared weights,
    `policy_images` for the policy (the paper's 1M / 0.2M). A small set needs explicit smaller counts."""
    if train_images < 1 or policy_images < 1:
        raise ValueError(f"need train_images >= 1 and policy_images >= 1, got {train_images} and {policy_images}")
    n = index.counts["train"]
    if train_images + policy_images > n:
        policy = max(1, n // 6)
        fix = (f"pass smaller train_images and policy_images (e.g. {n - policy:,} and {policy:,})" if n >= 2
               else "a split needs 2 or more")
        raise DataError(f"ImageNet search split asks for {train_images:,} + {policy_images:,} training images but "
                        f"the index lists {n:,}; {fix}")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return order[:train_images].clone(), order[train_images:train_images + policy_images].clone()


# ------------------------------------------------------------------------------------------- dataset, transforms


class _Unreadable(Exception):
    """An image file that cannot be read or decoded; the message names the file and why."""


_TORCHVISION_PREFIX = re.compile(r"^\w+, \S+:\d+, ")  # "decode_jpeg, /path/decode_jpeg.cpp:171, <message>"


class ImageNetDataset(Dataset):
    """Images `ids` (ids into index.splits[split]; None: all) read from `root` and decoded on the CPU (RGB,
    uint8 CHW), then `transform`ed. Item i is (image, label, skipped): `skipped` counts the unreadable files
    met for it, 0 normally, so that a caller sums it over batches, across any number of worker processes.

    An item may be a position or (position, seed), as EpochSampler gives: the seed fixes the transform's random
    draws, so an epoch is the same whenever and with whatever workers it runs.

    on_unreadable 'stop': a file that cannot be read or decoded, or whose size differs from the index, raises
    DataError naming it. 'skip': the next readable image of the same class among `ids` (in their order,
    wrapping around) is returned instead."""

    def __init__(self, index: ImageNetIndex, split: str, ids: Sequence[int] | torch.Tensor | np.ndarray | None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None, root: Path,
                 on_unreadable: Literal["skip", "stop"] = "stop") -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
        if on_unreadable not in ("skip", "stop"):
            raise ValueError(f"on_unreadable must be 'skip' or 'stop', got {on_unreadable!r}")
        files = index.splits[split]
        self.ids = np.arange(len(files), dtype=np.int64) if ids is None else np.asarray(ids, dtype=np.int64)
        if self.ids.ndim != 1 or (self.ids.size and (self.ids.min() < 0 or self.ids.max() >= len(files))):
            raise ValueError(f"ids must be a 1-D sequence of ids in 0..{len(files) - 1} of the {split} split")
        self.root = Path(root).expanduser()
        if not (self.root / split).is_dir():
            raise DataError(f"ImageNet images not found: {self.root / split} is not a folder; give the ImageNet "
                            f"root the index was made from (holding train/ and val/)")
        self.index, self.split, self.transform, self.on_unreadable = index, split, transform, on_unreadable
        self.labels = files.labels[self.ids]

    def __len__(self) -> int:
        return len(self.ids)

    def _decode(self, file_id: int) -> torch.Tensor:
        path = self.root / self.index.relative_path(self.split, file_id)
        try:
            data = np.fromfile(path, dtype=np.uint8)
        except OSError as err:
            raise _Unreadable(f"{path} cannot be read ({err.strerror or type(err).__name__})") from None
        expected = int(self.index.splits[self.split].sizes[file_id])
        if data.size != expected:
            raise _Unreadable(f"{path} is {data.size:,} bytes but the index says {expected:,} (changed since "
                              "indexing: rerun prepare-data if that was on purpose)")
        from torchvision.io import ImageReadMode, decode_image

        try:
            return decode_image(torch.from_numpy(data), mode=ImageReadMode.RGB)
        except RuntimeError as err:
            reason = _TORCHVISION_PREFIX.sub("", (str(err).strip().splitlines() or [""])[0])
            raise _Unreadable(f"{path} cannot be decoded ({reason})") from None

    def _load(self, position: int) -> tuple[torch.Tensor, int, int]:
        label = int(self.labels[position])
        try:
            return self._decode(int(self.ids[position])), label, 0
        except _Unreadable as err:
            if self.on_unreadable == "stop":
                raise DataError(f"ImageNet image {err}; replace or delete it and rerun prepare-data, or read with "
                                "on_unreadable='skip'") from None
            first = err
        same = np.flatnonzero(self.labels == label)
        skipped = 1
        for other in np.concatenate([same[same > position], same[same < position]]).tolist():
            try:
                return self._decode(int(self.ids[other])), label, skipped
            except _Unreadable:
                skipped += 1
        raise DataError(f"every one of the {skipped:,} {self.split} images of class {self.index.classes[label]} "
                        f"in this dataset is unreadable (first: {first}); extract that class again")

    def __getitem__(self, item: int | tuple[int, int]) -> tuple[torch.Tensor, int, int]:
        position, seed = item if isinstance(item, tuple) else (item, None)
        image, label, skipped = self._load(int(position))
        if self.transform is not None:
            if seed is None:
                image = self.transform(image)
            else:
                with torch.random.fork_rng(devices=[]):  # the caller's random stream is left as it was
                    torch.manual_seed(seed)
                    image = self.transform(image)
        return image, label, skipped


def train_transform(size: int = TRAIN_SIZE) -> v2.Compose:
    """DARTS's train_imagenet.py augmentation on uint8 CHW tensors (normalisation happens on the device)."""
    from torchvision.transforms import v2

    return v2.Compose([v2.RandomResizedCrop(size, antialias=True), v2.RandomHorizontalFlip(),
                       v2.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2)])


def val_transform(size: int = TRAIN_SIZE, resize: int = RESIZE) -> v2.Compose:
    """DARTS's validation transform: shorter side to `resize`, centre crop `size`; uint8 CHW in and out."""
    from torchvision.transforms import v2

    return v2.Compose([v2.Resize(resize, antialias=True), v2.CenterCrop(size)])


class DeviceNormalize:
    """uint8 [B,3,H,W] host batches (pinned by imagenet_loader) -> normalized float32 on `device`; from pinned
    memory the copy is asynchronous, and the arithmetic runs on the device (augment_batch's normalisation)."""

    def __init__(self, device: torch.device | str, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, channels_last: bool = False) -> None:
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=self.device)
        self.std = torch.tensor(std, dtype=torch.float32, device=self.device)
        self.channels_last = channels_last

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        x = augment_batch(images.to(self.device, non_blocking=True), self.mean, self.std, crop_offsets=None,
                          flips=None, cutout_centers=None)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x


# ------------------------------------------------------------------------------------------------------ loading


class EpochSampler(Sampler[tuple[int, int]]):
    """(position, sample seed) for positions 0..n-1, in an order fixed by (seed, epoch) — the generator seeding of
    DeviceLoader — with each sample's transform seed drawn from the same generator after the permutation. Call
    set_epoch before each epoch (as with DistributedSampler); a resumed run replays an epoch exactly.

    shard (several processes, ednas_core.distributed), as DeviceLoader's: None: every sample; "drop": this rank's
    slice of the epoch's (position, seed) pairs, the remainder dropped so that every rank has as many; "keep":
    this rank's slice, every sample kept (evaluation)."""

    def __init__(self, n: int, seed: int, shuffle: bool = True, epoch: int = 0, shard: str | None = None) -> None:
        if shard not in (None, "drop", "keep"):
            raise ValueError(f"shard must be None, 'drop' or 'keep', got {shard!r}")
        self.n, self.seed, self.shuffle, self.epoch, self.shard = n, seed, shuffle, epoch, shard

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n if self.shard is None else distributed.shard_size(self.n, self.shard == "drop")

    def __iter__(self) -> Iterator[tuple[int, int]]:
        generator = epoch_generator(self.seed, self.epoch)  # the order DeviceLoader's epochs follow
        order = torch.randperm(self.n, generator=generator) if self.shuffle else torch.arange(self.n)
        seeds = torch.randint(0, 2**62, (self.n,), generator=generator)
        pairs = torch.stack([order, seeds], dim=1)
        if self.shard is not None:  # the same pairs on every rank; this rank's rows of them
            pairs = distributed.shard(pairs, drop_remainder=self.shard == "drop")
        return iter(map(tuple, pairs.tolist()))


def imagenet_loader(dataset: ImageNetDataset, batch_size: int, workers: int, shuffle: bool, seed: int,
                    epoch: int = 0, pin_memory: bool = True, prefetch_factor: int = 2,
                    drop_last: bool = False, shard: str | None = None) -> DataLoader:
    """Batches (uint8 images [B,3,H,W], int64 labels [B], int64 skipped [B]) of `dataset` in the order of
    (seed, epoch), decoded by `workers` persistent worker processes (0: in this process). For the next epoch
    call loader.sampler.set_epoch(e) and iterate again: the workers stay. Memory is pinned when asked and a
    CUDA device is present; move batches with DeviceNormalize. shard: as EpochSampler's."""
    if batch_size < 1 or workers < 0 or prefetch_factor < 1:
        raise ValueError(f"need batch_size >= 1, workers >= 0 and prefetch_factor >= 1, got {batch_size}, "
                         f"{workers} and {prefetch_factor}")
    return DataLoader(dataset, batch_size=batch_size,
                      sampler=EpochSampler(len(dataset), seed, shuffle, epoch, shard=shard),
                      num_workers=workers, pin_memory=pin_memory and torch.cuda.is_available(),
                      drop_last=drop_last, persistent_workers=workers > 0,
                      prefetch_factor=prefetch_factor if workers > 0 else None)


class ImageNetBatches:
    """DeviceLoader's interface over ImageNet files: epoch(e) yields (normalized float images, labels) on
    `device`, in the order of (seed, e) whatever the worker count; len() is the batches of an epoch and
    num_samples its images (this rank's shard). Images the dataset substituted for unreadable files
    (on_unreadable 'skip') are counted in `skipped` (host integer, summed as batches arrive: no device read)."""

    def __init__(self, dataset: ImageNetDataset, batch_size: int, *, workers: int, seed: int, shuffle: bool,
                 device: torch.device | str, channels_last: bool = False, drop_last: bool = False,
                 shard: str | None = None, prefetch_factor: int = 2) -> None:
        self.dataset, self.batch_size = dataset, batch_size
        self.loader = imagenet_loader(dataset, batch_size, workers, shuffle, seed, drop_last=drop_last,
                                      prefetch_factor=prefetch_factor, shard=shard)
        self.normalize = DeviceNormalize(device, channels_last=channels_last)
        self.device = torch.device(device)
        self.skipped = 0

    def __len__(self) -> int:
        return len(self.loader)

    @property
    def num_samples(self) -> int:
        n = len(self.loader.sampler)
        return min(len(self) * self.batch_size, n)

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        self.loader.sampler.set_epoch(epoch)
        for images, labels, skipped in self.loader:
            self.skipped += int(skipped.sum())
            yield self.normalize(images), labels.to(self.device, non_blocking=True)
