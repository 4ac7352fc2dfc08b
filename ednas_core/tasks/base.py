"""What a task is to the pipeline: its search space, the data prepare-data writes and the stages read, its
search, that search restored for derive, derive's score, and the trainer of a found cell. One subclass a task
(tasks/cifar10.py, digits.py, imagenet.py, ptb.py, markov.py, nb201.py), registered by name in tasks/__init__.py;
a task overrides only what differs from the defaults here, and the stages and the report ask the task instead of
testing its name."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from ..config import DataConfig, Params
from ..data.prepared import Manifest
from ..epochs import EpochCallback
from ..genotypes import Genotype, load_genotype
from ..runtime import Runtime
from ..search import EDNASSearch, load_search_state
from ..spaces import Architecture, SearchSpace
from ..strategies import Strategy, make_strategy

if TYPE_CHECKING:
    from ..data import ImageDataset
    from ..data.nb201_table import NB201Table
    from ..data.ptb import Corpus
    from .imagenet import PreparedImageNet

    TaskData = ImageDataset | Corpus | PreparedImageNet

Scorer = tuple[Callable[[Architecture], float], int]


class Task:
    """A task of the pipeline. Subclasses set the class attributes and implement prepare, build_child,
    make_search, derive_scorer and _trainer."""

    name: ClassVar[str]
    space: ClassVar[SearchSpace]
    text: ClassVar[bool] = False  # a language model: perplexity, bptt windows, tokens
    auxiliary_head: ClassVar[bool] = False  # its evaluated network has one (excluded from the parameter count)
    has_table: ClassVar[bool] = False  # a benchmark table knows the accuracy of every cell
    error_label: ClassVar[str] = "test error (%)"  # the report's name of its headline error
    error_note: ClassVar[str] = ""  # what the test error is measured on, where that is not the test split

    # --- prepare-data --------------------------------------------------------------------------------------

    def prepare(self, params: Params, root: Path, folder: Path) -> tuple[Manifest, "NB201Table | None"]:
        """Reads (or downloads) the raw data under `root` (data.root) and writes it checked into `folder`
        (data/prepared); returns the manifest and, for a task with a table, the table."""
        raise NotImplementedError

    # --- what the stages read ------------------------------------------------------------------------------

    def load_table(self, folder: Path) -> "NB201Table | None":
        """The benchmark table prepare-data wrote, for a task with one (has_table)."""
        return None

    def load_data(self, folder: Path, data_config: DataConfig, search_config: Any | None) -> "TaskData | None":
        """What prepare-data wrote in `folder` for the search of `search_config` (None: the data to train on)."""
        from ..data.prepared import load_prepared

        return load_prepared(folder, self.name)

    def check_search_data(self, data: "TaskData | None", search_config: Any, data_config: DataConfig,
                          prefix: str) -> None:
        """One ConfigError line, before the search writes anything, where the data does not fit the settings."""

    # --- search and derive ---------------------------------------------------------------------------------

    def make_search(self, data: "TaskData | None", search_config: Any, data_config: DataConfig, runtime: Runtime,
                    checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict,
                    table: "NB201Table | None" = None) -> EDNASSearch:
        """The whole search, ready to run(); `settings` join its checkpoint fingerprint."""
        raise NotImplementedError

    def build_child(self, data: "TaskData | None", search_config: Any, data_config: DataConfig, runtime: Runtime,
                    table: "NB201Table | None" = None) -> Any:
        """The search's child (network, data streams, reward) as make_search builds it, before any training."""
        raise NotImplementedError

    def restore_search(self, data: "TaskData | None", search_config: Any, data_config: DataConfig,
                       runtime: Runtime, state: dict, source: Path, fix: str,
                       table: "NB201Table | None" = None) -> tuple[Any, Strategy]:
        """The child network and strategy of a finished search (`state`, loaded from `source`), for derive; a
        state that does not fit raises one StateFileError line naming `source` and saying `fix`."""
        child = self.build_child(data, search_config, data_config, runtime, table)
        strategy = make_strategy(self.space, search_config, seed=0)
        load_search_state(child, strategy, state, source, fix)
        return child, strategy

    def derive_scorer(self, child: Any, batch_size: int, runtime: Runtime) -> Scorer:
        """The search reward on one fixed validation batch, the same for every candidate; also its size
        (images, or predicted tokens; 0 for table look-ups)."""
        raise NotImplementedError

    # --- evaluate and report -------------------------------------------------------------------------------

    def trains(self, evaluate_config: Any) -> bool:
        """Whether evaluate trains the cell (a task with a table may only look it up)."""
        return True

    def genotype_of(self, source: str, derived: Path) -> Genotype:
        """evaluate.genotype as a genotype: 'derived' (the file `derived`) or a genotype JSON file."""
        return load_genotype(derived if source == "derived" else source)

    def truth(self, genotype: Genotype, folder: Path) -> dict[str, Any] | None:
        """What a benchmark table in `folder` knows of the cell (has_table), else None."""
        return None

    def make_trainer(self, genotype: Genotype, data: "TaskData", evaluate_config: Any, runtime: Runtime,
                     checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict):
        """The trainer of `genotype` from scratch; a genotype of another space gets one ValueError line."""
        if genotype.space != self.space.name:
            raise ValueError(f"task {self.name} trains {self.space.name} genotypes, got a {genotype.space} "
                             "genotype; set evaluate.genotype to a matching one")
        return self._trainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)

    def _trainer(self, genotype: Genotype, data: "TaskData", evaluate_config: Any, runtime: Runtime,
                 checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict):
        raise NotImplementedError
