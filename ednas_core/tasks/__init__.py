"""The tasks the pipeline runs, registered by name (params.yaml `task`): each a Task (tasks/base.py) in a file of
its own, cifar10.py, digits.py and imagenet.py (CNN cells, tasks/image.py), ptb.py and markov.py (recurrent cells,
tasks/text.py), nb201.py (the NAS-Bench-201 cell against the benchmark's table). The stages and the report ask
the task (get_task) instead of branching on its name; a new task is one new file and one line below (with its
params.yaml section in config.py).

The functions below are the same calls by task name, for callers that hold only the name."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ..config import DataConfig
from ..epochs import EpochCallback
from ..genotypes import Genotype
from ..runtime import Runtime
from ..search import EDNASSearch
from ..spaces import SearchSpace
from ..strategies import Strategy
from .base import Scorer, Task
from .cifar10 import CIFAR10
from .digits import DIGITS
from .imagenet import IMAGENET, ImageNetChild, PreparedImageNet
from .markov import MARKOV
from .nb201 import NB201
from .ptb import PTB

# the names params.yaml accepts are config.TASKS (config stays free of torch); tests check that both agree
TASK_REGISTRY: dict[str, Task] = {task.name: task for task in (CIFAR10, DIGITS, IMAGENET, PTB, MARKOV, NB201)}


def get_task(name: str) -> Task:
    """The registered task `name`; an unknown one gets one ValueError line naming the known ones."""
    try:
        return TASK_REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(TASK_REGISTRY)}") from None


def space_of(task: str) -> SearchSpace:
    return get_task(task).space


def load_data(task: str, folder: Path, data_config: DataConfig, search_config: Any | None) -> Any:
    return get_task(task).load_data(folder, data_config, search_config)


def make_search(task: str, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict,
                table: Any = None) -> EDNASSearch:
    return get_task(task).make_search(data, search_config, data_config, runtime, checkpoint, callbacks, settings,
                                      table)


def restore_search(task: str, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                   state: dict, source: Path, fix: str = "rerun the search that wrote it",
                   table: Any = None) -> tuple[Any, Strategy]:
    return get_task(task).restore_search(data, search_config, data_config, runtime, state, source, fix, table)


def derive_scorer(task: str, child: Any, batch_size: int, runtime: Runtime) -> Scorer:
    return get_task(task).derive_scorer(child, batch_size, runtime)


def make_trainer(task: str, genotype: Genotype, data: Any, evaluate_config: Any, runtime: Runtime,
                 checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict):
    return get_task(task).make_trainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)


__all__ = ["TASK_REGISTRY", "ImageNetChild", "PreparedImageNet", "Task", "derive_scorer", "get_task",
           "load_data", "make_search", "make_trainer", "restore_search", "space_of"]
