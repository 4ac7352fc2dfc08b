"""The official NATS-Bench topology benchmark (Dong, Liu, Musial and Gabrys, TPAMI 2021; the NAS-Bench-201 space),
read from the files its authors publish, without the `nats_bench` package.

The files are bz2-compressed pickles (nats_bench/api_utils.py, `pickle_save` / `pickle_load`). `nats_bench` opens
them with a plain `pickle.load`, which runs whatever code a file names; this module unpickles them with an
Unpickler that builds only containers and numbers (`SAFE_GLOBALS`) and refuses everything else with one line, so
a file that is not what it claims to be cannot run code here.

Any one of these, as downloaded, in data.root/nb201 (searched in this order):
    - NATS-tss-v1_0-3ffb9-simple/       the archive extracted (`tar xf NATS-tss-v1_0-3ffb9-simple.tar`):
                                          meta.pickle.pbz2 and one file per architecture, 000000 .. 015624.pickle.pbz2
    - NATS-tss-v1_0-3ffb9-simple.tar    the same archive unextracted (read as a stream, nothing written)
    - NATS-tss-v1_0-3ffb9.pickle.pbz2   the single benchmark file (held in memory whole while it is read)
    - NAS-Bench-201-v1_1-096897.pth,   NAS-Bench-201's own benchmark files (nas_201_api; the same records, under
      NAS-Bench-201-v1_0-e61699.pth     'less' and 'full' for the 12- and 200-epoch schedules), saved by torch.save:
                                          read by torch.load(weights_only=True), numpy numbers admitted as above
The "-full" archive (the same records with every trained network's weights) is refused: it holds torch objects.

What is taken of each architecture's record (nats_bench's ArchResults / ResultsCount state dicts: per training
schedule `hp`, per (dataset, seed) trial, `eval_acc1es['<set>@<last epoch>']`), averaged over the trial seeds as
`get_more_info(index, dataset, hp=..., is_random=False)` averages them:
    - cifar10_valid_12     hp '12',  'cifar10-valid', 'x-valid'   (the tabular search's reward)
    - cifar10_test_200     hp '200', 'cifar10',       'ori-test'  (trained on train + valid)
    - cifar100_test_200    hp '200', 'cifar100',      'x-test'
    - imagenet16_test_200  hp '200', 'ImageNet16-120','x-test'
"""

from __future__ import annotations

import bz2
import codecs
import collections
import hashlib
import io
import pickle
import re
import sys
import tarfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
from numpy._core import multiarray

from .dataset import DataError
from .prepared import md5sum

ARCHIVE_DIR = "NATS-tss-v1_0-3ffb9-simple"
ARCHIVE_TAR = f"{ARCHIVE_DIR}.tar"
BENCHMARK_FILE = "NATS-tss-v1_0-3ffb9.pickle.pbz2"
NB201_FILES = ("NAS-Bench-201-v1_1-096897.pth", "NAS-Bench-201-v1_0-e61699.pth")
META_FILE = "meta.pickle.pbz2"
N_ARCHITECTURES = 15_625
PROGRESS_EVERY = 2_500  # records of an archive between two progress lines
_RECORD = re.compile(r"^(\d+)\.pickle\.pbz2$")

# (hp, dataset, evaluation set) of each column of the table (module docstring)
COLUMNS = {"cifar10_valid_12": ("12", "cifar10-valid", "x-valid"),
           "cifar10_test_200": ("200", "cifar10", "ori-test"),
           "cifar100_test_200": ("200", "cifar100", "x-test"),
           "imagenet16_test_200": ("200", "ImageNet16-120", "x-test")}
NB201_HP = {"12": "less", "200": "full"}  # NAS-Bench-201's .pth files name the two schedules so

# Everything a NATS-Bench record needs beyond what pickle builds itself (dict, list, tuple, str, numbers, sets):
# ordered dicts and numpy numbers and arrays (written by numpy 1.x as numpy.core.*, by numpy 2 as numpy._core.*).
SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): codecs.encode,  # how protocols < 3 write bytes (numpy arrays' buffers)
    ("numpy", "dtype"): np.dtype,
    ("numpy", "ndarray"): np.ndarray,
    **{(module, name): getattr(multiarray, name)
       for module in ("numpy.core.multiarray", "numpy._core.multiarray") for name in ("scalar", "_reconstruct")},
}

HOW_TO_GET = (f"download {ARCHIVE_TAR} (or {BENCHMARK_FILE}) from NATS-Bench's README "
              "(github.com/D-X-Y/NATS-Bench) and put it, as downloaded or extracted, into")


class _Refused(Exception):
    """The pickle names something outside SAFE_GLOBALS."""


class SafeUnpickler(pickle.Unpickler):
    """Builds containers and numbers only: a global outside SAFE_GLOBALS or a persistent id is refused."""

    def find_class(self, module: str, name: str) -> Any:
        found = SAFE_GLOBALS.get((module, name))
        if found is None:
            raise _Refused(f"{module}.{name}")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("a persistent id (torch storage)")


def safe_load(stream: IO[bytes], where: str) -> Any:
    """Unpickles a bz2-compressed NATS-Bench pickle from `stream`; any problem is one line naming `where`."""
    try:
        return SafeUnpickler(bz2.BZ2File(stream)).load()
    except _Refused as refused:
        raise DataError(f"{where} asks to load {refused}, which a NATS-Bench topology record never holds (the "
                        f"-full archive holds trained weights; anything else is not NATS-Bench's); use {ARCHIVE_TAR} "
                        f"or {BENCHMARK_FILE} as downloaded") from None
    except (OSError, EOFError, ValueError, pickle.UnpicklingError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as err:
        raise DataError(f"{where} is not a readable bz2 pickle ({type(err).__name__}: {err}); it is truncated or "
                        "corrupt: download it again") from None


@dataclass
class NATSTable:
    """What the table needs of the benchmark, row i = architecture index i."""
    arch_strings: list[str]
    columns: dict[str, np.ndarray]          # COLUMNS' names -> accuracies (%)
    sources: dict[str, str] = field(default_factory=dict)  # file name -> md5 (the manifest's record)
    path: Path = Path()                     # what was read (for error messages)


def find_benchmark(folder: Path) -> Path | None:
    """The NATS-Bench topology benchmark in `folder`, in the module docstring's order; None when there is none."""
    for name in (ARCHIVE_DIR, ARCHIVE_TAR, BENCHMARK_FILE, *NB201_FILES):
        if (folder / name).exists():
            return folder / name
    return None


def say_on_stderr(message: str) -> None:
    print(f"prepare-data: {message}", file=sys.stderr, flush=True)


def load_benchmark(path: Path, say: Callable[[str], None] = say_on_stderr) -> NATSTable:
    """The four columns of every architecture of the benchmark at `path` (a find_benchmark answer); `say` hears
    what is being read, and every PROGRESS_EVERY records of an archive how many were."""
    path = Path(path)
    say(f"reading the benchmark {path}")
    if path.is_dir():
        return _from_records(path, _directory_records(path), say)
    if path.name.endswith(".tar"):
        return _from_records(path, _tar_records(path), say)
    if path.suffix == ".pth":
        return _from_benchmark_content(path, _torch_load(path))
    with open(path, "rb") as stream:
        return _from_benchmark_content(path, safe_load(stream, str(path)))


# --- the layouts ------------------------------------------------------------------------------------------------


def _directory_records(folder: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of meta.pickle.pbz2 and every per-architecture file of an extracted archive."""
    names = [p.name for p in folder.iterdir() if p.name == META_FILE or _RECORD.match(p.name)]
    for name in sorted(names):
        yield name, (folder / name).read_bytes()


def _tar_records(path: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, bytes) of the archive's files, read as a stream without extracting."""
    try:
        with tarfile.open(path, mode="r|") as archive:
            for member in archive:
                name = Path(member.name).name
                if member.isfile() and (name == META_FILE or _RECORD.match(name)):
                    extracted = archive.extractfile(member)
                    assert extracted is not None
                    data = extracted.read()
                    if len(data) != member.size:
                        raise DataError(f"{path} ends inside {member.name} ({len(data):,} of {member.size:,} "
                                        "bytes): the download is incomplete; download it again")
                    yield name, data
    except (tarfile.TarError, OSError, EOFError) as err:
        raise DataError(f"{path} is not a readable tar archive ({type(err).__name__}: {err}); it is incomplete "
                        "or corrupt: download it again") from None


def _from_records(path: Path, records: Iterator[tuple[str, bytes]], say: Callable[[str], None]) -> NATSTable:
    """Reads the meta file and the per-architecture records of an archive (a folder or a tar)."""
    digest = hashlib.md5()
    meta: list[str] | None = None
    found: dict[int, tuple[str, dict[str, float]]] = {}
    prefix = f"{path}/" if path.is_dir() else f"{path} member "
    for name, data in records:
        digest.update(name.encode() + b"\0" + hashlib.md5(data).digest())
        where = prefix + name
        content = safe_load(io.BytesIO(data), where)
        if name == META_FILE:
            meta = _meta_archs(content, where)
            continue
        index = int(_RECORD.match(name).group(1))  # type: ignore[union-attr]
        if index in found:
            raise DataError(f"{where}: architecture {index} appears twice; extract {ARCHIVE_TAR} afresh")
        found[index] = _record(content, index, where)
        if len(found) % PROGRESS_EVERY == 0:
            say(f"read {len(found):,} architecture records of {path.name}")
    say(f"read {len(found):,} architecture records of {path.name} in all")
    if meta is None:
        raise DataError(f"{path} has no {META_FILE}: it is incomplete or not NATS-Bench's topology archive; "
                        f"{HOW_TO_GET} {path.parent}")
    _check_complete(path, len(meta), found, "extract or download it again")
    extra = sorted(set(found) - set(range(len(meta))))
    if extra:
        raise DataError(f"{path}: record {extra[0]:06d}.pickle.pbz2 is beyond the {len(meta):,} architectures of "
                        f"{META_FILE}; extract {ARCHIVE_TAR} afresh")
    return _table(path, meta, found, {f"{path.name} ({len(found):,} records)": digest.hexdigest()})


def _torch_load(path: Path) -> Any:
    """A NAS-Bench-201 .pth file through torch.load(weights_only=True), numpy numbers admitted."""
    import torch

    allowed: list = [(obj, f"{module}.{name}") for (module, name), obj in SAFE_GLOBALS.items()]
    allowed += [t for t in vars(np.dtypes).values() if isinstance(t, type) and issubclass(t, np.dtype)]
    try:
        with torch.serialization.safe_globals(allowed):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        reasons = [line for line in lines if "unsupported global" in line.lower() or "but got" in line]
        detail = (reasons or lines or ["refused"])[0]
        raise DataError(f"{path}: torch.load(weights_only=True) refuses it ({detail}); it is not NAS-Bench-201's "
                        f"benchmark file: download {NB201_FILES[0]} again") from None
    except (RuntimeError, EOFError, OSError, ValueError) as err:
        raise DataError(f"{path} is not a readable torch file ({type(err).__name__}: "
                        f"{str(err).strip().splitlines()[0] if str(err).strip() else ''}); it is truncated or "
                        "corrupt: download it again") from None


def _from_benchmark_content(path: Path, content: Any) -> NATSTable:
    """A whole benchmark file's content: {'meta_archs': [...], 'arch2infos': {index: record}, ...}."""
    meta = _meta_archs(content, str(path))
    infos = content.get("arch2infos")
    if not isinstance(infos, dict):
        raise DataError(f"{path} has no 'arch2infos' dict; it is not NATS-Bench's topology benchmark file: "
                        f"{HOW_TO_GET} {path.parent}")
    _check_complete(path, len(meta), infos, "download it again")
    found = {i: _record(infos[i], i, f"{path} architecture {i}") for i in range(len(meta))}
    return _table(path, meta, found, {path.name: md5sum(path)})


def _check_complete(path: Path, n: int, have: dict, fix: str) -> None:
    """Every architecture index 0..n-1 has a record in `have`."""
    missing = next((i for i in range(n) if i not in have), None)
    if missing is not None:
        raise DataError(f"{path} holds {len(have):,} of the {n:,} architecture records (the first missing: "
                        f"{missing:06d}); it is incomplete: {fix}")


# --- one record -----------------------------------------------------------------------------------------------


def _meta_archs(content: Any, where: str) -> list[str]:
    archs = content.get("meta_archs") if isinstance(content, dict) else None
    if not isinstance(archs, list) or not all(isinstance(a, str) for a in archs):
        raise DataError(f"{where} has no list of architecture strings 'meta_archs'; it is not NATS-Bench's "
                        "topology benchmark (tss): download it again")
    if len(archs) != N_ARCHITECTURES:
        raise DataError(f"{where} lists {len(archs):,} architectures; the topology benchmark has "
                        f"{N_ARCHITECTURES:,} (the size benchmark, NATS-sss, is not this space): use {ARCHIVE_TAR}")
    return archs


def _record(content: Any, index: int, where: str) -> tuple[str, dict[str, float]]:
    """(architecture string, COLUMNS' accuracies) of one architecture's record {hp: ArchResults state}."""
    values: dict[str, float] = {}
    arch_str: str | None = None
    for column, (hp, dataset, eval_set) in COLUMNS.items():
        try:
            results = content[hp] if hp in content else content[NB201_HP[hp]]
            arch_str = results["arch_str"] if arch_str is None else arch_str
            seeds = results["dataset_seed"][dataset]
            accuracies = []
            for seed in seeds:
                trial = results["all_results"][(dataset, seed)]
                accuracies.append(float(trial["eval_acc1es"][f"{eval_set}@{int(trial['epochs']) - 1}"]))
        except (KeyError, TypeError, IndexError, ValueError) as err:
            raise DataError(f"{where}: no {eval_set} accuracy of {dataset} after the {hp}-epoch schedule "
                            f"({type(err).__name__}: {err}); the record is not NATS-Bench's topology format: "
                            f"{HOW_TO_GET}") from None
        if not accuracies:
            raise DataError(f"{where}: no trial of {dataset} after the {hp}-epoch schedule; download it again")
        values[column] = float(np.mean(accuracies))
    if not isinstance(arch_str, str):
        raise DataError(f"{where}: the architecture string is {arch_str!r}; download it again")
    return arch_str, values


def _table(path: Path, meta: list[str], found: dict[int, tuple[str, dict[str, float]]],
           sources: dict[str, str]) -> NATSTable:
    for index, (arch_str, _) in found.items():
        if arch_str != meta[index]:
            raise DataError(f"{path}: record {index} is of architecture {arch_str}, but {META_FILE} lists "
                            f"{meta[index]} at that index; the files come from different versions: download again")
    columns = {c: np.array([found[i][1][c] for i in range(len(meta))], dtype=np.float64) for c in COLUMNS}
    return NATSTable(list(meta), columns, sources, path)


__all__ = ["ARCHIVE_DIR", "ARCHIVE_TAR", "BENCHMARK_FILE", "COLUMNS", "NATSTable", "SAFE_GLOBALS",
           "NB201_FILES", "SafeUnpickler", "find_benchmark", "load_benchmark", "safe_load"]
