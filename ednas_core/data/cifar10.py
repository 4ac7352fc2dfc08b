"""CIFAR-10 from the official binary (`cifar-10-batches-bin`) or python-pickle (`cifar-10-batches-py`) files."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch
from numpy._core.multiarray import _reconstruct
from numpy._core.numeric import _frombuffer

from ednas_core.data.dataset import DataError, ImageDataset

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

BIN_DIR = "cifar-10-batches-bin"
PY_DIR = "cifar-10-batches-py"
BIN_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz"
PY_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"

_RECORDS = 10_000
_PIXELS = 3 * 32 * 32
_BIN_BYTES = _RECORDS * (1 + _PIXELS)
_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
_TEST = "test_batch"


def _fix(folder: Path, url: str) -> str:
    return f"download {url} and extract it into {folder.parent}"


def _read_bin(folder: Path) -> ImageDataset:
    names = [f"{name}.bin" for name in _TRAIN + [_TEST]]
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 incomplete: missing {', '.join(missing)} in {folder} (expected data_batch_1.bin.."
            f"data_batch_5.bin and test_batch.bin, {_BIN_BYTES:,} bytes each); {_fix(folder, BIN_URL)}"
        )
    bad = [f"{name} is {(folder / name).stat().st_size:,} bytes" for name in names
           if (folder / name).stat().st_size != _BIN_BYTES]
    if bad:
        raise DataError(
            f"CIFAR-10 files with the wrong size in {folder}: {', '.join(bad)} (expected {_BIN_BYTES:,} bytes each); "
            f"{_fix(folder, BIN_URL)}"
        )
    records = []
    for name in names:
        try:
            records.append(np.fromfile(folder / name, dtype=np.uint8).reshape(_RECORDS, 1 + _PIXELS))
        except (OSError, ValueError) as exc:
            raise DataError(f"CIFAR-10 file {folder / name} is unreadable ({exc}); {_fix(folder, BIN_URL)}") from exc
    train, test = np.concatenate(records[:5]), records[5]
    meta = folder / "batches.meta.txt"
    classes = CIFAR10_CLASSES
    if meta.is_file():
        classes = [line.strip() for line in meta.read_text().splitlines() if line.strip()]
    return _dataset(train[:, 1:], train[:, 0], test[:, 1:], test[:, 0], classes, meta)


# Everything the official python batches reference (numpy arrays pickled by Python 2: _reconstruct, ndarray,
# dtype) plus numpy's protocol-5 form of the same arrays (_frombuffer); a pickle naming anything else could run
# code when loaded, so it is refused before anything is called.
_PICKLE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy.core.numeric", "_frombuffer"): _frombuffer,
    ("numpy._core.numeric", "_frombuffer"): _frombuffer,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle names a global that a CIFAR-10 batch never holds."""


class _BatchUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return _PICKLE_GLOBALS[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None


def _unpickle(path: Path) -> dict:
    try:
        with path.open("rb") as f:
            content = _BatchUnpickler(f, encoding="bytes").load()
    except _RefusedGlobal as exc:
        raise DataError(
            f"CIFAR-10 file {path} is refused: it names {exc}, which no CIFAR-10 batch holds (loading it could run "
            f"code); delete {path.parent} and {_fix(path.parent, PY_URL)}"
        ) from None
    except Exception as exc:  # a truncated or foreign file raises any of several pickle/EOF/attribute errors
        raise DataError(
            f"CIFAR-10 file {path} is unreadable ({type(exc).__name__}: {exc}); {_fix(path.parent, PY_URL)}"
        ) from exc
    if not isinstance(content, dict):
        kind = type(content).__name__
        raise DataError(f"CIFAR-10 file {path} holds a {kind}, not a dict; {_fix(path.parent, PY_URL)}")
    return content


def _read_py(folder: Path) -> ImageDataset:
    missing = [name for name in _TRAIN + [_TEST] if not (folder / name).is_file()]
    if missing:
        raise DataError(
            f"CIFAR-10 incomplete: missing {', '.join(missing)} in {folder} (expected data_batch_1..data_batch_5 "
            f"and test_batch); {_fix(folder, PY_URL)}"
        )
    pixels, labels = [], []
    for name in _TRAIN + [_TEST]:
        batch = _unpickle(folder / name)
        data, batch_labels = batch.get(b"data"), np.asarray(batch.get(b"labels", []))
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.shape != (_RECORDS, _PIXELS) \
                or batch_labels.shape != (_RECORDS,):
            raise DataError(
                f"CIFAR-10 file {folder / name} does not hold b'data' uint8 [{_RECORDS}, {_PIXELS}] and "
                f"{_RECORDS} b'labels'; {_fix(folder, PY_URL)}"
            )
        pixels.append(data)
        labels.append(batch_labels)
    meta = folder / "batches.meta"
    classes = CIFAR10_CLASSES
    if meta.is_file():
        names = _unpickle(meta).get(b"label_names")
        if not isinstance(names, list):
            raise DataError(f"CIFAR-10 file {meta} holds no b'label_names' list; {_fix(folder, PY_URL)}")
        classes = [name.decode() if isinstance(name, bytes) else str(name) for name in names]
    return _dataset(np.concatenate(pixels[:5]), np.concatenate(labels[:5]), pixels[5], labels[5], classes, meta)


def _dataset(train_x: np.ndarray, train_y: np.ndarray, test_x: np.ndarray, test_y: np.ndarray,
             classes: list[str], meta: Path) -> ImageDataset:
    if len(classes) != 10:
        raise DataError(f"CIFAR-10 class list {meta} names {len(classes)} classes, expected 10; fix or delete it")

    def images(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(x).reshape(-1, 3, 32, 32))

    def targets(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(y.astype(np.int64))

    return ImageDataset(images(train_x), targets(train_y), images(test_x), targets(test_y), classes,
                        mean=CIFAR10_MEAN, std=CIFAR10_STD)


def load_cifar10(root: str | Path) -> ImageDataset:
    """Load CIFAR-10 from `root` (the folder holding cifar-10-batches-bin/-py, or one of them); bin is preferred."""
    root = Path(root).expanduser()
    if (root / "data_batch_1.bin").exists() or root.name == BIN_DIR:
        return _read_bin(root)
    if (root / "data_batch_1").exists() or root.name == PY_DIR:
        return _read_py(root)
    if (root / BIN_DIR).is_dir():
        return _read_bin(root / BIN_DIR)
    if (root / PY_DIR).is_dir():
        return _read_py(root / PY_DIR)
    raise DataError(
        f"CIFAR-10 not found: expected data_batch_1.bin..data_batch_5.bin and test_batch.bin ({_BIN_BYTES:,} bytes "
        f"each) in {root / BIN_DIR}, or the python version in {root / PY_DIR}; download {BIN_URL} and extract it "
        f"into {root}"
    )
