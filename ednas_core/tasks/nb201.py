"""The NAS-Bench-201 task: the search of the NB201 cell space against the benchmark's ground truth.

search.mode tabular: no network; a reward is the table's 12-epoch CIFAR-10 validation accuracy of the cell
(ednas_core/tabular.py), the budget a number of look-ups. search.mode weight_sharing: the NB201 supernet trained
on CIFAR-10 by the search loop (ednas_core/child_nb201.py), with the ranking of a fixed sample of cells by the
shared weights measured against the table every `rank_every` epochs (ednas_core/ranking.py). Derive scores the
strategy's candidates with the search's own reward (derive.mode best / argmax); derive.mode queried of a tabular
search (derive_queried) makes no look-up beyond the budget: its candidates are the search's own look-ups, the
chosen cell the best-validation one among them (NB201's protocol). Evaluate looks the derived cell up in the table
(the benchmark trained every cell: 200 epochs, CIFAR-10/100 and ImageNet16-120)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

from ..config import DataConfig, NB201SearchConfig, Params
from ..data import DataError, ImageDataset
from ..data.nb201_table import NB201Table
from ..data.prepared import TABLE_FILE, Manifest, read_manifest, save_prepared, save_table_manifest
from ..derive import DeriveResult, derive_from
from ..epochs import EpochCallback
from ..genotypes import Genotype, from_architecture, to_architecture
from ..runtime import Runtime
from ..search import EDNASSearch
from ..spaces import NB201_SPACE, Architecture, from_nb201_string, to_nb201_string
from ..strategies import Strategy
from ..tabular import TableChild, tabular_search
from .base import Scorer
from .cifar10 import CIFAR10
from .image import ImageTask, fixed_batch_scorer

TABLE_DATASETS = ("cifar10", "cifar100", "imagenet16")
NB201_DIR = "nb201"  # data.root/nb201: the NAS-Bench-201 table (ednas_core/data/nb201_table.py says which files)


def load_prepared_table(folder: Path) -> NB201Table:
    """The benchmark table prepare-data wrote (md5-checked against the manifest); one-line DataError otherwise."""
    path = Path(folder) / TABLE_FILE
    manifest = read_manifest(folder)
    if manifest.task != "nb201" or not manifest.table_md5 or not path.is_file():
        raise DataError(f"{folder} holds no prepared NAS-Bench-201 table; run the prepare-data stage with task "
                        "nb201 (dvc repro)")
    return NB201Table.load_prepared(path, md5=manifest.table_md5)


def is_tabular(search_config: Any) -> bool:
    return isinstance(search_config, NB201SearchConfig) and search_config.mode == "tabular"


def answer_probe(table: NB201Table) -> Callable[[Architecture], dict[str, float]]:
    """The strategy's answer of an epoch (its final_architecture) judged by the table: `answer_test_acc`, its
    200-epoch CIFAR-10 test accuracy (%), and `answer_rank` among the 15,625 cells (1 = the best). A look-up:
    nothing of the search changes."""
    return lambda arch: {"answer_test_acc": float(table.test_acc(arch)), "answer_rank": float(table.rank(arch))}


def make_nb201_search(table: NB201Table, data: ImageDataset | None, search_config: NB201SearchConfig,
                      data_config: DataConfig, runtime: Runtime, checkpoint: Path | None,
                      callbacks: Iterable[EpochCallback], settings: dict) -> EDNASSearch:
    if search_config.mode == "tabular":
        return tabular_search(table, search_config, runtime, checkpoint, callbacks, settings,
                              answer_probe=answer_probe(table))
    from ..child_nb201 import nb201_search
    from ..ranking import RankingProbe

    if data is None:
        raise DataError("search.mode weight_sharing needs CIFAR-10 in data/prepared; rerun prepare-data (dvc repro)")

    def probe(child: Any):
        """Ranks a fixed sample of cells with the shared weights against their true CIFAR-10 test accuracy."""
        return RankingProbe.for_child(NB201_SPACE, child, table.test_acc, samples=search_config.rank_samples,
                                      batches=search_config.rank_batches, seed=runtime.seed
                                      ).every(child, search_config.rank_every, search_config.epochs)

    return nb201_search(data, search_config, data_config, runtime, checkpoint, callbacks, settings,
                        epoch_probe=probe, answer_probe=answer_probe(table))


def nb201_scorer(child: Any, batch_size: int, runtime: Runtime) -> Scorer:
    """Derive's score: the search's own reward (tabular: the table's 12-epoch validation accuracy; weight
    sharing: accuracy of the shared weights on one fixed validation batch); also what it is scored on."""
    if isinstance(child, TableChild):
        return (lambda arch: child.reward(arch, None)), 0
    return fixed_batch_scorer(child, batch_size, runtime)


def best_queried(child: Any) -> Architecture:
    """The best-validation cell among a tabular search's look-ups (derive.mode queried)."""
    if not isinstance(child, TableChild) or child.best is None:
        raise ValueError("derive.mode queried needs a finished tabular search (nb201.search.mode: tabular)")
    return child.table.arch(child.best)


def derive_queried(child: Any, strategy: Strategy) -> DeriveResult:
    """derive.mode queried (NB201's protocol, nothing looked up beyond the search's budget): the candidates are the
    search's own distinct look-ups in query order, each with its tabular reward read without a new query; `best`
    and `chosen` are best_queried(child) (ties: the first queried); `argmax` is the strategy's final architecture
    with its table reward (informational, not a query either). The child's query record is left as it was."""
    searched = best_queried(child)
    result = derive_from(strategy, child.queried_architectures(), child.table_reward, "queried")
    if child.table.index(result.chosen.architecture) != child.table.index(searched):
        raise RuntimeError(f"derive.mode queried chose {to_nb201_string(result.chosen.architecture)}, not the "
                           f"search's best look-up {to_nb201_string(searched)}")
    return result


def lookup(table: NB201Table, arch: Architecture) -> dict[str, Any]:
    """What the benchmark knows of a cell: its string and index, its 200-epoch test accuracy on each dataset,
    its 12-epoch CIFAR-10 validation accuracy (the tabular reward) and its rank among the 15,625 cells."""
    out: dict[str, Any] = {"arch_string": to_nb201_string(arch), "nb201_index": table.index(arch)}
    for dataset in TABLE_DATASETS:
        value = table.test_acc(arch, dataset)
        if value is not None:
            out[f"{dataset}_test_acc"] = value
    out["cifar10_valid12_acc"] = table.valid_acc(arch)
    out["rank"] = table.rank(arch)
    out["architectures"] = len(table)
    return out


def nb201_genotype(source: str, derived: Path) -> Architecture:
    """evaluate.genotype of the nb201 task: 'derived', an NB201 architecture string, or a genotype JSON file."""
    from ..genotypes import load_genotype

    if source == "derived":
        genotype: Genotype = load_genotype(derived)
    elif source.strip().startswith("|"):
        return from_nb201_string(source)
    else:
        genotype = load_genotype(source)
    if genotype.space != NB201_SPACE.name:
        raise ValueError(f"task nb201 looks up nb201 genotypes, got a {genotype.space} genotype; set "
                         "nb201.evaluate.genotype to an NB201 architecture string or an nb201 genotype JSON")
    return to_architecture(genotype)


class NB201Task(ImageTask):
    """The NAS-Bench-201 cell against its table: searched on the table alone (tabular) or on CIFAR-10 with shared
    weights; evaluate looks the cell up, or trains it with the benchmark's recipe (nb201.evaluate.train)."""

    name = "nb201"
    space = NB201_SPACE
    auxiliary_head = False
    has_table = True

    def load_raw(self, root: Path) -> tuple[ImageDataset, dict[str, str]]:
        return CIFAR10.load_raw(root)

    def prepare(self, params: Params, root: Path, folder: Path) -> tuple[Manifest, NB201Table]:
        """The checked table from data.root/nb201 into `folder`; CIFAR-10 beside it unless neither the search
        (tabular) nor evaluate (no training) needs images."""
        table = NB201Table.load(root / NB201_DIR)
        folder.mkdir(parents=True, exist_ok=True)
        table_md5 = table.save(folder / TABLE_FILE)
        sources = {f"{NB201_DIR}/{name}": md5 for name, md5 in table.sources.items()}
        if params.nb201.search.mode == "tabular" and not params.nb201.evaluate.train:
            return save_table_manifest(folder, self.name, table_md5, sources), table
        dataset, cifar_sources = self.load_raw(root)
        return save_prepared(dataset, folder, self.name, {**sources, **cifar_sources}, table_md5), table

    def load_table(self, folder: Path) -> NB201Table:
        return load_prepared_table(folder)

    def load_data(self, folder: Path, data_config: DataConfig, search_config: Any | None) -> ImageDataset | None:
        """CIFAR-10, or nothing for a tabular search (the table alone)."""
        return None if is_tabular(search_config) else super().load_data(folder, data_config, search_config)

    def check_search_data(self, data: Any, search_config: Any, data_config: DataConfig, prefix: str) -> None:
        if data is not None:
            super().check_search_data(data, search_config, data_config, prefix)

    def make_search(self, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                    checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict,
                    table: NB201Table | None = None) -> EDNASSearch:
        assert table is not None, "task nb201 needs its table"
        return make_nb201_search(table, data, search_config, data_config, runtime, checkpoint, callbacks, settings)

    def build_child(self, data: Any, search_config: Any, data_config: DataConfig, runtime: Runtime,
                    table: NB201Table | None = None) -> Any:
        """A TableChild (tabular), or the NB201 supernet's child on CIFAR-10."""
        assert table is not None, "task nb201 needs its table"
        if search_config.mode == "tabular":
            return TableChild(table, search_config.budget, search_config.queries_per_epoch)
        from ..child_nb201 import NB201Child

        if data is None:
            raise DataError("search.mode weight_sharing needs CIFAR-10 in data/prepared; rerun prepare-data")
        return NB201Child.build(data, search_config, data_config, runtime)

    def derive_scorer(self, child: Any, batch_size: int, runtime: Runtime) -> Scorer:
        return nb201_scorer(child, batch_size, runtime)

    def trains(self, evaluate_config: Any) -> bool:
        return bool(evaluate_config.train)

    def genotype_of(self, source: str, derived: Path) -> Genotype:
        """'derived', an NB201 architecture string (|nor_conv_3x3~0|+...) or an nb201 genotype JSON file."""
        return from_architecture(NB201_SPACE, nb201_genotype(source, derived))

    def truth(self, genotype: Genotype, folder: Path) -> dict[str, Any]:
        return lookup(load_prepared_table(folder), to_architecture(genotype))

    def _trainer(self, genotype: Genotype, data: Any, evaluate_config: Any, runtime: Runtime,
                 checkpoint: Path | None, callbacks: Iterable[EpochCallback], settings: dict):
        from ..train_nb201 import NB201Trainer

        return NB201Trainer(genotype, data, evaluate_config, runtime, checkpoint, callbacks, settings)


NB201 = NB201Task()

__all__ = ["NB201", "NB201Task", "NB201_DIR", "TABLE_DATASETS", "best_queried", "derive_queried", "is_tabular",
           "load_prepared_table", "lookup", "make_nb201_search", "nb201_genotype", "nb201_scorer"]
