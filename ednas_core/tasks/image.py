"""The image classification tasks held in memory (cifar10, digits): CNN cells searched on a split of the training
images (child_cnn.py) and trained from scratch in the DARTS-style network (train.py). A task of this kind says only
how its raw images are read (load_raw); imagenet (images on disk) and nb201 (its own cell and table) build on it."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..child_cnn import ImageChild, cnn_search
from ..config import DataConfig, Params
from ..data import DeviceLoader, ImageDataset
from ..data.dataset import check_search_split
from ..data.prepared import Manifest, save_prepared
from ..epochs import EpochCallback
from ..genotypes import Genotype
from ..runtime import Runtime
from ..search import EDNASSearch
from ..spaces import CNN_SPACE
from .base import Scorer, Task


def fixed_batch_scorer(child: Any, batch_size: int, runtime: Runtime) -> Scorer:
    """The reward of an image child on the first `batch_size` images of its validation split, in order."""
    valid = child.valid_loader
    loader = DeviceLoader(valid.images, valid.labels, batch_size, valid.mean, valid.std, seed=runtime.seed,
                          shuffle=False, channels_last=runtime.channels_last)
    images, labels = next(iter(loader.epoch(0)))
    return (lambda arch: child.reward(arch, (images, labels))), int(labels.shape[0])


class ImageTask(Task):
    space = CNN_SPACE
    auxiliary_head = True

    def load_raw(self, root: Path) -> tuple[ImageDataset, dict[str, str]]:
        """The task's images from `root` (data.root), and the md5 (or origin) of each raw source read."""
        raise NotImplementedError

    def prepare(self, params: Params, root: Path, folder: Path) -> tuple[Manifest, None]:
        dataset, sources = self.load_raw(root)
        return save_prepared(dataset, folder, self.name, sources), None

    def check_search_data(self, data: Any, search_config: Any, data_config: DataConfig, prefix: str) -> None:
        """Each part of the split fills a batch, or nothing is written."""
        check_search_split(len(data.train_labels), data_config.train_portion, search_config.batch_size,
                           search_config.policy_batch_size, prefix)

    def make_search(self, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                    checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict,
                    table: Any = None) -> EDNASSearch:
        return cnn_search(data, search_config, data_config, runtime, checkpoint, callbacks, settings)

    def build_child(self, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                    table: Any = None) -> ImageChild:
        return ImageChild.build(data, search_config, data_config, runtime)

    def derive_scorer(self, child: Any, batch_size: int, runtime: Runtime) -> Scorer:
        return fixed_batch_scorer(child, batch_size, runtime)

    def _trainer(self, genotype: Genotype, data: Any, evaluate_config: Any, runtime: Runtime,
                 checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict):
        from ..train import GenotypeTrainer

        return GenotypeTrainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)
