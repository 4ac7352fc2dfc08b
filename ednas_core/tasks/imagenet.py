"""The direct ImageNet task (paper section 4.2): the search of the CNN space on ILSVRC-2012 itself, no CIFAR
proxy, and the evaluation of the found cell in the mobile setting.

The images stay where the user put them (data.root/imagenet/{train,val}/<wnid>/*.JPEG); prepare-data writes
only their index (data/prepared/imagenet_index.json, ednas_core/data/imagenet.py) and a manifest holding its
md5. The search splits the training images 1M / 0.2M (shared weights / policy) by the run's seed and trains the
search network behind DARTS's ImageNet stems (supernet/cnn.py ImageNetSearchNetwork: 224x224 -> 28x28) on
random-resized crops, decoded by worker processes; a reward is the top-1 accuracy on one batch of centre crops
of the policy images. Evaluation (train_imagenet.py) trains the 14-cell network of models/imagenet.py on the
whole training set and reports top-1 and top-5 error on the 50,000 validation images."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch

from .. import distributed
from ..child_cnn import ImageChild
from ..config import DataConfig, ImageNetSearchConfig, Params
from ..data import DataError
from ..knobs import ConfigError
from ..data.imagenet import (INDEX_FILE, ImageNetBatches, ImageNetDataset, ImageNetIndex, index_imagenet, load_index,
                             save_index, search_split, train_transform, val_transform)
from ..data.imagenet_archives import extract_official_archives
from ..data.prepared import Manifest, read_manifest, save_index_manifest
from ..epochs import EpochCallback
from ..genotypes import Genotype
from ..repo import raw_data_root
from ..runtime import Runtime, seed_for
from ..search import EDNASSearch
from ..spaces import CNN_SPACE, Architecture
from ..strategies import make_strategy
from ..supernet.cnn import ImageNetSearchNetwork
from .base import Scorer
from .image import ImageTask

IMAGENET_DIR = "imagenet"  # data.root/imagenet holds train/ and val/


def resize_for(image_size: int) -> int:
    """The shorter side an image is resized to before its centre crop: 256 for 224, in proportion otherwise."""
    return round(image_size * 256 / 224)


@dataclass(frozen=True)
class PreparedImageNet:
    """What the imagenet stages read: the checked index of the files and the folder they are in."""

    index: ImageNetIndex
    root: Path

    @property
    def num_classes(self) -> int:
        return len(self.index.classes)


def imagenet_root(data: DataConfig) -> Path:
    return raw_data_root(data.root) / IMAGENET_DIR


def prepare_imagenet(data: DataConfig, folder: Path) -> tuple[Manifest, ImageNetIndex]:
    """Indexes data.root/imagenet (names and sizes of every image, no pixel read) into `folder`; a missing or
    partial layout gets one DataError line saying what to place where. The official archives placed in the
    folder instead are extracted first (data/imagenet_archives.py: torchvision's md5-checked parsers)."""
    root = imagenet_root(data)
    if root.is_dir():
        extract_official_archives(root)
    index = index_imagenet(root)
    folder.mkdir(parents=True, exist_ok=True)
    save_index(index, folder / INDEX_FILE)
    return save_index_manifest(folder, "imagenet", index.md5, index.counts["train"], index.counts["val"],
                               list(index.classes), {f"{IMAGENET_DIR}/ (file names and sizes)": index.md5}), index


def load_prepared_imagenet(folder: Path, data: DataConfig) -> PreparedImageNet:
    """The index prepare-data wrote (checked against the manifest's md5) and the image folder it lists."""
    folder = Path(folder)
    manifest = read_manifest(folder)
    if manifest.task != "imagenet" or manifest.kind != "index":
        raise DataError(f"{folder} holds the {manifest.task!r} data, not the ImageNet index; run the prepare-data "
                        "stage again with task imagenet (dvc repro)")
    index = load_index(folder / INDEX_FILE)
    if index.md5 != manifest.dataset_md5:
        raise DataError(f"{folder / INDEX_FILE} does not match the md5 in {folder / 'manifest.json'}; rerun "
                        "`dvc repro prepare-data`")
    root = imagenet_root(data)
    if not (root / "train").is_dir() or not (root / "val").is_dir():
        raise DataError(f"the ImageNet images indexed by prepare-data are not in {root} (train/ and val/); put "
                        "them back, or set data.root to the folder that holds imagenet/ and rerun prepare-data")
    return PreparedImageNet(index, root)


def check_imagenet_split(data: PreparedImageNet, search: ImageNetSearchConfig, prefix: str) -> None:
    """The split fits in the indexed training images and each part fills a batch on every process; otherwise one
    ConfigError line naming the keys, before the search writes anything."""
    n, ranks = data.index.counts["train"], distributed.world().size
    wanted = search.train_images + search.policy_images
    if wanted > n:
        policy = max(1, n // 6)
        raise ConfigError(f"{prefix}search.train_images + {prefix}search.policy_images = {wanted:,} training images, "
                          f"but the ImageNet index lists {n:,}; lower them (e.g. {n - policy:,} and {policy:,})")
    for key, images, batch in (("train_images", search.train_images, search.batch_size),
                               ("policy_images", search.policy_images, search.policy_batch_size)):
        if images < batch * ranks:
            raise ConfigError(f"{prefix}search.{key}: {images:,} images do not fill one batch of {batch} on each of "
                              f"{ranks} process(es); raise it or lower the batch size")


class ImageNetChild(ImageChild):
    """ImageChild on image files: the same steps and reward, with batches decoded by ImageNetBatches; the
    epoch's images substituted for unreadable files are reported as skipped_images."""

    _skipped_before = 0

    @classmethod
    def build(cls, data: PreparedImageNet, search: ImageNetSearchConfig, data_config: DataConfig,
              runtime: Runtime) -> "ImageNetChild":
        train_ids, policy_ids = search_split(data.index, search.train_images, search.policy_images, runtime.seed)
        size = search.image_size
        centre = val_transform(size, resize_for(size))
        common = dict(workers=search.workers, device=runtime.device, channels_last=runtime.channels_last,
                      shard="drop" if distributed.world().distributed else None)

        def dataset(ids: torch.Tensor, transform: Any) -> ImageNetDataset:
            return ImageNetDataset(data.index, "train", ids, transform, data.root, search.on_unreadable)

        train = ImageNetBatches(dataset(train_ids, train_transform(size) if search.augment else centre),
                                search.batch_size, seed=runtime.seed, shuffle=True, **common)
        policy = ImageNetBatches(dataset(policy_ids, centre), search.policy_batch_size, seed=runtime.seed + 1,
                                 shuffle=True, **common)
        torch.manual_seed(seed_for(runtime.seed, "search-init"))
        net = ImageNetSearchNetwork(search.init_channels, search.layers, data.num_classes).to(runtime.device)
        if runtime.channels_last:
            net = net.to(memory_format=torch.channels_last)
        return cls(net, train, policy, search, runtime)

    def _skipped(self) -> int:
        return self.train_loader.skipped + self.valid_loader.skipped

    def start_epoch(self, epoch: int) -> float:
        self._skipped_before = self._skipped()
        return super().start_epoch(epoch)

    def epoch_metrics(self) -> dict[str, float]:
        skipped = distributed.sum_of_host_value(self._skipped() - self._skipped_before, self.runtime.device)
        return {**super().epoch_metrics(), "skipped_images": skipped}


def imagenet_search(data: PreparedImageNet, search: ImageNetSearchConfig, data_config: DataConfig, runtime: Runtime,
                    checkpoint_path: Path | None, callbacks: Iterable[EpochCallback] = (),
                    settings: dict | None = None) -> EDNASSearch:
    """The whole ImageNet search, ready to run() (as child_cnn.cnn_search)."""
    child = ImageNetChild.build(data, search, data_config, runtime)
    strategy = make_strategy(CNN_SPACE, search, seed_for(runtime.seed, "policy-init"))
    settings = {"data": asdict(data_config), "index_md5": data.index.md5, **(settings or {})}
    return EDNASSearch(CNN_SPACE, child, strategy, search, runtime, checkpoint_path, callbacks, settings)


def imagenet_scorer(child: ImageNetChild, batch_size: int,
                    runtime: Runtime) -> tuple[Callable[[Architecture], float], int]:
    """Derive's score: the search reward on one fixed batch of `batch_size` centre-cropped policy images (the
    first of the split's order; decoded in this process, once)."""
    batches = ImageNetBatches(child.valid_loader.dataset, batch_size, workers=0, seed=runtime.seed, shuffle=False,
                              device=runtime.device, channels_last=runtime.channels_last)
    images, labels = next(iter(batches.epoch(0)))
    return (lambda arch: child.reward(arch, (images, labels))), int(labels.shape[0])


class ImageNetTask(ImageTask):
    """ImageNet searched and evaluated directly: the images indexed where they are, the search on files."""

    name = "imagenet"
    error_label = "top-1 error (%)"
    error_note = " on the 50,000 validation images (ImageNet's test labels are not public)"

    def prepare(self, params: Params, root: Path, folder: Path) -> tuple[Manifest, None]:
        return prepare_imagenet(params.data, folder)[0], None

    def load_data(self, folder: Path, data_config: DataConfig, search_config: Any | None) -> PreparedImageNet:
        return load_prepared_imagenet(folder, data_config)

    def check_search_data(self, data: Any, search_config: Any, data_config: DataConfig, prefix: str) -> None:
        check_imagenet_split(data, search_config, prefix)

    def make_search(self, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                    checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict,
                    table: Any = None) -> EDNASSearch:
        return imagenet_search(data, search_config, data_config, runtime, checkpoint, callbacks, settings)

    def build_child(self, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                    table: Any = None) -> ImageNetChild:
        return ImageNetChild.build(data, search_config, data_config, runtime)

    def derive_scorer(self, child: Any, batch_size: int, runtime: Runtime) -> Scorer:
        return imagenet_scorer(child, batch_size, runtime)

    def _trainer(self, genotype: Genotype, data: Any, evaluate_config: Any, runtime: Runtime,
                 checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict):
        from ..train_imagenet import ImageNetTrainer

        return ImageNetTrainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)


IMAGENET = ImageNetTask()

__all__ = ["IMAGENET", "IMAGENET_DIR", "ImageNetChild", "ImageNetTask", "PreparedImageNet", "check_imagenet_split",
           "imagenet_root", "imagenet_scorer", "imagenet_search", "load_prepared_imagenet", "prepare_imagenet",
           "resize_for"]
