"""The tasks the pipeline runs and what each needs: image tasks search CNN cells (child_cnn, train), text
tasks search recurrent cells (child_rnn, train_rnn), nb201 searches the NAS-Bench-201 cell against the benchmark's
table (tasks/nb201.py), imagenet searches and trains CNN cells on image files (tasks/imagenet.py). The stages
call these instead of branching themselves."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable


from ..child_cnn import ImageChild, cnn_search
from ..child_rnn import TextChild, rnn_search
from ..config import DataConfig
from ..data import DeviceLoader, ImageDataset
from ..data.ptb import Corpus, batchify
from ..epochs import EpochCallback
from ..genotypes import Genotype
from ..strategies import Strategy, make_strategy
from ..runtime import Runtime
from ..search import EDNASSearch, load_search_state
from ..spaces import CNN_SPACE, NB201_SPACE, RNN_SPACE, Architecture, SearchSpace
from . import imagenet, nb201
from .imagenet import ImageNetChild, PreparedImageNet

IMAGE_TASKS = ("cifar10", "digits", "imagenet")
TEXT_TASKS = ("ptb", "markov")


def is_text(task: str) -> bool:
    return task in TEXT_TASKS


def space_of(task: str) -> SearchSpace:
    return RNN_SPACE if is_text(task) else NB201_SPACE if task == "nb201" else CNN_SPACE


TaskData = ImageDataset | Corpus | PreparedImageNet


def load_data(task: str, folder: Path, data_config: DataConfig, search_config: Any | None) -> TaskData | None:
    """What prepare-data wrote for `task` in `folder`: tensors (image and text tasks), the index of ImageNet's
    files, or, for the search of a tabular nb201 `search_config`, nothing (the table alone, loaded by
    tasks.nb201.load_prepared_table). search_config None: the data to train on, whatever the search."""
    if task == "imagenet":
        return imagenet.load_prepared_imagenet(folder, data_config)
    if nb201.is_tabular(search_config):
        return None
    from ..data.prepared import load_prepared

    return load_prepared(folder, task)


def make_search(task: str, data: TaskData | None, search_config: Any, data_config: DataConfig,
                runtime: Runtime, checkpoint: Path | None, callbacks: Iterable[EpochCallback],
                settings: dict, table: "nb201.NB201Table | None" = None) -> EDNASSearch:
    """The search of `task`; nb201 also takes its benchmark `table` (and no `data` in tabular mode)."""
    if task == "nb201":
        assert table is not None, "task nb201 needs its table"
        return nb201.make_nb201_search(table, data, search_config, data_config, runtime, checkpoint, callbacks,
                                       settings)
    if task == "imagenet":
        return imagenet.imagenet_search(data, search_config, data_config, runtime, checkpoint, callbacks, settings)
    if is_text(task):
        return rnn_search(data, search_config, runtime, checkpoint, callbacks, settings)
    return cnn_search(data, search_config, data_config, runtime, checkpoint, callbacks, settings)


def restore_search(task: str, data: TaskData | None, search_config: Any, data_config: DataConfig,
                   runtime: Runtime, state: dict, source: Path, fix: str = "rerun the search that wrote it",
                   table: "nb201.NB201Table | None" = None) -> tuple[Any, Strategy]:
    """The child network and strategy of a finished search (`state`, loaded from `source`:
    data/search/supernet.safetensors), for derive. A state that does not fit the task and settings raises one
    StateFileError line naming `source` and saying `fix`."""
    if task == "nb201":
        assert table is not None, "task nb201 needs its table"
        return nb201.restore_nb201(table, data, search_config, data_config, runtime, state, source, fix)
    if task == "imagenet":
        return imagenet.restore_imagenet(data, search_config, data_config, runtime, state, source, fix)
    if is_text(task):
        child: ImageChild | TextChild = TextChild.build(data, search_config, runtime)
    else:
        child = ImageChild.build(data, search_config, data_config, runtime)
    strategy = make_strategy(space_of(task), search_config, seed=0)
    load_search_state(child, strategy, state, source, fix)
    return child, strategy


def derive_scorer(task: str, child: Any, batch_size: int,
                  runtime: Runtime) -> tuple[Callable[[Architecture], float], int]:
    """The search reward on one fixed validation batch, the same for every candidate; also its size
    (images, or predicted tokens; 0 for table look-ups)."""
    if task == "nb201":
        return nb201.nb201_scorer(child, batch_size, runtime)
    if isinstance(child, ImageNetChild):
        return imagenet.imagenet_scorer(child, batch_size, runtime)
    if isinstance(child, TextChild):
        valid = batchify(child.valid_data.t().reshape(-1), batch_size, runtime.device)
        window = min(child.config.bptt, valid.shape[0] - 1)
        batch = (valid[:window], valid[1 : window + 1])
        return (lambda arch: child.reward(arch, batch, carry=False)), batch[1].numel()
    valid = child.valid_loader
    loader = DeviceLoader(valid.images, valid.labels, batch_size, valid.mean, valid.std, seed=runtime.seed,
                          shuffle=False, channels_last=runtime.channels_last)
    images, labels = next(iter(loader.epoch(0)))
    return (lambda arch: child.reward(arch, (images, labels))), int(labels.shape[0])


def make_trainer(task: str, genotype: Genotype, data: TaskData, evaluate_config: Any,
                 runtime: Runtime, checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict):
    if genotype.space != space_of(task).name:
        raise ValueError(f"task {task} trains {space_of(task).name} genotypes, got a {genotype.space} genotype; "
                         "set evaluate.genotype to a matching one")
    if task == "nb201":
        from ..train_nb201 import NB201Trainer

        return NB201Trainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)
    if task == "imagenet":
        from ..train_imagenet import ImageNetTrainer

        return ImageNetTrainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)
    if is_text(task):
        from ..train_rnn import RNNTrainer

        return RNNTrainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)
    from ..train import GenotypeTrainer

    return GenotypeTrainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)


