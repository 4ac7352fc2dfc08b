"""The prepared form of a task's data that the pipeline's later stages read: one torch file (uint8 image tensors,
or token ids and the vocabulary of a text corpus) plus a JSON manifest with the md5 of that file and of every
raw file it came from."""

from __future__ import annotations

import hashlib
import io
import json
import pickle
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path

import torch

from ..checkpoint import atomic_write_bytes, atomic_write_text
from .dataset import DataError, ImageDataset
from .imagenet import INDEX_FILE
from .ptb import Corpus

DATASET_FILE = "dataset.pt"
MANIFEST_FILE = "manifest.json"
TABLE_FILE = "nb201.csv"  # task nb201: the checked NAS-Bench-201 table (ednas_core/data/nb201_table.py)


def md5sum(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Manifest:
    task: str
    dataset_md5: str
    train: int                   # images, or tokens of a corpus
    test: int
    shape: list[int]             # [C, H, W] of images; [] for a corpus
    classes: list[str]           # class names; [] for a corpus
    sources: dict[str, str]      # raw file -> md5
    kind: str = "images"         # images | text | table (nb201 tabular: the benchmark table alone, no dataset file)
                                 # | index (imagenet: an index of the image files, data/imagenet.py)
    vocab_size: int = 0
    table_md5: str = ""          # nb201: md5 of the prepared benchmark table (TABLE_FILE)


def _write_manifest(folder: Path, manifest: Manifest) -> Manifest:
    atomic_write_text(folder / MANIFEST_FILE, json.dumps(asdict(manifest), indent=2) + "\n")
    return manifest


def save_table_manifest(folder: Path, task: str, table_md5: str, sources: dict[str, str]) -> Manifest:
    """The manifest of a task whose prepared data is its benchmark table alone (nb201, tabular mode); a dataset
    file of an earlier preparation is removed, so that nothing stale travels with the outputs."""
    (folder / DATASET_FILE).unlink(missing_ok=True)
    (folder / INDEX_FILE).unlink(missing_ok=True)
    return _write_manifest(folder, Manifest(task=task, dataset_md5=table_md5, train=0, test=0, shape=[], classes=[],
                                            sources=sources, kind="table", table_md5=table_md5))


def save_index_manifest(folder: Path, task: str, index_md5: str, train: int, test: int, classes: list[str],
                        sources: dict[str, str]) -> Manifest:
    """The manifest of a task whose prepared data is an index of image files left in place (imagenet); a dataset
    file of an earlier preparation is removed."""
    (folder / DATASET_FILE).unlink(missing_ok=True)
    (folder / TABLE_FILE).unlink(missing_ok=True)
    return _write_manifest(folder, Manifest(task=task, dataset_md5=index_md5, train=train, test=test, shape=[],
                                            classes=classes, sources=sources, kind="index"))


def save_prepared(data: ImageDataset | Corpus, folder: Path, task: str, sources: dict[str, str],
                  table_md5: str = "") -> Manifest:
    buffer = io.BytesIO()
    if isinstance(data, Corpus):
        torch.save({"vocab": data.vocab, "train": data.train, "valid": data.valid, "test": data.test}, buffer)
        sizes = dict(train=data.train.numel(), test=data.test.numel(), shape=[], classes=[], kind="text",
                     vocab_size=len(data.vocab))
    else:
        torch.save({"train_images": data.train_images, "train_labels": data.train_labels,
                    "test_images": data.test_images, "test_labels": data.test_labels,
                    "classes": data.classes, "mean": data.mean, "std": data.std}, buffer)
        sizes = dict(train=len(data.train_labels), test=len(data.test_labels), shape=list(data.train_images.shape[1:]),
                     classes=list(data.classes))
    payload = buffer.getvalue()
    atomic_write_bytes(folder / DATASET_FILE, payload)
    (folder / INDEX_FILE).unlink(missing_ok=True)  # an earlier imagenet preparation's
    manifest = Manifest(task=task, dataset_md5=hashlib.md5(payload).hexdigest(), sources=sources,
                        table_md5=table_md5, **sizes)
    return _write_manifest(folder, manifest)


_RERUN = "rerun `dvc repro prepare-data`"
_FIELD_TYPES = {field.name: field.type for field in fields(Manifest)}  # annotations as text (postponed)
_REQUIRED = [field.name for field in fields(Manifest) if field.default is MISSING]
_JSON_TYPES = {"str": str, "int": int, "list[int]": list, "list[str]": list, "dict[str, str]": dict}


def _fits(key: str, value: object) -> bool:
    """Whether a manifest value has its field's JSON type (true/false is no number) and, for kind, a known kind."""
    if isinstance(value, bool) or not isinstance(value, _JSON_TYPES[_FIELD_TYPES[key]]):
        return False
    return key != "kind" or value in ("images", "text", "table", "index")


def read_manifest(folder: Path) -> Manifest:
    """The manifest of a prepared dataset; a missing, unparsable or foreign one gets a one-line DataError."""
    path = Path(folder) / MANIFEST_FILE
    if not path.is_file():
        raise DataError(f"no prepared dataset in {Path(folder)}; run the prepare-data stage (dvc repro prepare-data)")
    try:
        data = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = f" at line {err.lineno} column {err.colno}" if isinstance(err, json.JSONDecodeError) else ""
        raise DataError(f"{path} is not valid JSON{where} (truncated or damaged); {_RERUN}") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a JSON {type(data).__name__}, not an object; {_RERUN}")
    missing = [k for k in _REQUIRED if k not in data]
    unknown = [k for k in data if k not in _FIELD_TYPES]
    wrong = [k for k, v in data.items() if k in _FIELD_TYPES and not _fits(k, v)]
    if missing or unknown or wrong:
        problems = [f"{label} {', '.join(keys)}" for label, keys in
                    (("lacks the keys", missing), ("has unknown keys", unknown), ("has bad values of", wrong)) if keys]
        raise DataError(f"{path} {'; '.join(problems)} (made by other code, or damaged); {_RERUN}")
    return Manifest(**data)


def load_prepared(folder: Path, task: str) -> ImageDataset | Corpus:
    """Loads and checks a prepared dataset; a missing, foreign or corrupt one gets a one-line DataError."""
    folder = Path(folder)
    manifest_path, data_path = folder / MANIFEST_FILE, folder / DATASET_FILE
    if manifest_path.is_file() and read_manifest(folder).kind == "index":
        raise DataError(f"{folder} holds the index of ImageNet's files, not the {task!r} dataset; run the "
                        "prepare-data stage again (dvc repro)")
    if manifest_path.is_file() and read_manifest(folder).kind == "table":
        raise DataError(f"{folder} holds only the {read_manifest(folder).task} benchmark table (tabular mode), "
                        "no images; run the prepare-data stage again (dvc repro)")
    if not manifest_path.is_file() or not data_path.is_file():
        raise DataError(f"no prepared dataset in {folder}; run the prepare-data stage (dvc repro prepare-data)")
    manifest = read_manifest(folder)
    if manifest.task != task:
        raise DataError(f"{folder} holds the {manifest.task!r} dataset but task is {task!r}; "
                        "run the prepare-data stage again (dvc repro)")
    if md5sum(data_path) != manifest.dataset_md5:
        raise DataError(f"{data_path} does not match the md5 in {manifest_path}; it is corrupt: "
                        "delete it and run prepare-data again")
    try:
        state = torch.load(data_path, map_location="cpu", weights_only=True)
        if manifest.kind == "text":
            return Corpus(vocab=list(state["vocab"]), train=state["train"], valid=state["valid"], test=state["test"])
        return ImageDataset(state["train_images"], state["train_labels"], state["test_images"],
                            state["test_labels"], classes=list(state["classes"]), mean=tuple(state["mean"]),
                            std=tuple(state["std"]))
    except Exception as err:  # truncated zip, a refused (non-tensor) object, a missing key, another layout
        if isinstance(err, pickle.UnpicklingError):  # torch's own message is many lines about trusting the file
            detail = "it holds objects other than tensors, numbers, strings, lists and dicts"
        else:
            detail = f"{type(err).__name__}: {(str(err).strip().splitlines() or [''])[0][:200]}"
        raise DataError(f"{data_path} is not a prepared {manifest.kind} dataset ({detail}); "
                        f"delete {folder} and {_RERUN}") from None
