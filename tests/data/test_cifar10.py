"""load_cifar10 on full-size fake files in both layouts, its error messages, and (when present) the real data."""

from __future__ import annotations

import builtins
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from ednas_core.data import DataError, load_cifar10
from ednas_core.data.cifar10 import CIFAR10_MEAN, CIFAR10_STD
from ednas_core.data.dataset import channel_stats

NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
CLASSES = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"]


@pytest.fixture(scope="module")
def fake(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Random records written once as cifar-10-batches-bin/ and cifar-10-batches-py/ under separate parents."""
    rng = np.random.default_rng(0)
    records = {name: rng.integers(0, 256, size=(10_000, 3073), dtype=np.uint8) for name in NAMES}
    for r in records.values():
        r[:, 0] %= 10
    bin_root = tmp_path_factory.mktemp("bin")
    bin_dir = bin_root / "cifar-10-batches-bin"
    bin_dir.mkdir()
    for name, r in records.items():
        r.tofile(bin_dir / f"{name}.bin")
    (bin_dir / "batches.meta.txt").write_text("\n".join(CLASSES) + "\n\n")
    py_root = tmp_path_factory.mktemp("py")
    py_dir = py_root / "cifar-10-batches-py"
    py_dir.mkdir()
    for name, r in records.items():
        batch = {b"data": np.ascontiguousarray(r[:, 1:]), b"labels": r[:, 0].tolist(), b"batch_label": name.encode()}
        with (py_dir / name).open("wb") as f:
            pickle.dump(batch, f)
    with (py_dir / "batches.meta").open("wb") as f:
        pickle.dump({b"label_names": [c.encode() for c in CLASSES]}, f)
    return {"records": records, "bin_root": bin_root, "py_root": py_root, "bin_dir": bin_dir, "py_dir": py_dir}


@pytest.fixture(scope="module")
def loaded(fake: dict):
    return load_cifar10(fake["bin_root"])


def _linked_copy(src: Path, dst: Path, skip: str) -> None:
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.name != skip:
            (dst / path.name).symlink_to(path)


def test_bin_shapes_and_metadata(loaded) -> None:
    assert loaded.train_images.shape == (50_000, 3, 32, 32) and loaded.train_images.dtype == torch.uint8
    assert loaded.test_images.shape == (10_000, 3, 32, 32) and loaded.test_images.dtype == torch.uint8
    assert loaded.train_labels.shape == (50_000,) and loaded.train_labels.dtype == torch.int64
    assert loaded.test_labels.shape == (10_000,) and loaded.test_labels.dtype == torch.int64
    assert loaded.classes == CLASSES
    assert (loaded.num_classes, loaded.in_channels, loaded.image_size) == (10, 3, 32)
    assert loaded.mean == CIFAR10_MEAN and loaded.std == CIFAR10_STD


def test_bin_records_read_back_exactly(fake: dict, loaded) -> None:
    r = 1234
    record = fake["records"]["data_batch_2"][r]
    image = loaded.train_images[10_000 + r]
    assert loaded.train_labels[10_000 + r] == int(record[0])
    for channel in range(3):  # R, G, B planes of 1024 bytes, row-major 32x32
        expected = torch.from_numpy(record[1 + 1024 * channel : 1 + 1024 * (channel + 1)].reshape(32, 32).copy())
        assert torch.equal(image[channel], expected)
    assert int(image[1, 2, 5]) == int(record[1 + 1024 + 2 * 32 + 5])
    test = fake["records"]["test_batch"]
    assert torch.equal(loaded.test_labels, torch.from_numpy(test[:, 0].astype(np.int64)))
    assert torch.equal(loaded.test_images.reshape(10_000, -1), torch.from_numpy(test[:, 1:]))
    last = fake["records"]["data_batch_5"]
    assert torch.equal(loaded.train_labels[40_000:], torch.from_numpy(last[:, 0].astype(np.int64)))


def test_python_layout_matches_bin(fake: dict, loaded) -> None:
    py = load_cifar10(fake["py_root"])
    assert py.classes == CLASSES
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(py, field), getattr(loaded, field)), field


def test_root_may_be_the_batches_folder(fake: dict, loaded) -> None:
    assert torch.equal(load_cifar10(fake["bin_dir"]).test_labels, loaded.test_labels)
    assert torch.equal(load_cifar10(str(fake["py_dir"])).test_labels, loaded.test_labels)


def test_bin_is_preferred_when_both_exist(fake: dict, loaded, tmp_path: Path) -> None:
    _linked_copy(fake["bin_dir"], tmp_path / "cifar-10-batches-bin", skip="")
    (tmp_path / "cifar-10-batches-py").mkdir()  # empty: reading it would fail
    assert torch.equal(load_cifar10(tmp_path).train_labels, loaded.train_labels)


def test_missing_everything_names_both_folders_and_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert str(tmp_path / "cifar-10-batches-bin") in message and str(tmp_path / "cifar-10-batches-py") in message
    assert "cifar-10-binary.tar.gz" in message and "30,730,000" in message


def test_missing_bin_file_is_named(fake: dict, tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    _linked_copy(fake["bin_dir"], folder, skip="data_batch_3.bin")
    with pytest.raises(DataError, match=r"missing data_batch_3\.bin in ") as info:
        load_cifar10(tmp_path)
    assert str(folder) in str(info.value) and "\n" not in str(info.value)


def test_wrong_size_bin_file_is_named_with_its_size(fake: dict, tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-bin"
    _linked_copy(fake["bin_dir"], folder, skip="data_batch_4.bin")
    (folder / "data_batch_4.bin").write_bytes(bytes(3073 * 100))
    with pytest.raises(DataError, match=r"data_batch_4\.bin is 307,300 bytes") as info:
        load_cifar10(folder)
    assert "data_batch_1.bin is" not in str(info.value)


def test_missing_python_file_is_named(fake: dict, tmp_path: Path) -> None:
    _linked_copy(fake["py_dir"], tmp_path / "cifar-10-batches-py", skip="test_batch")
    with pytest.raises(DataError, match=r"missing test_batch in .*cifar-10-batches-py"):
        load_cifar10(tmp_path)


def test_corrupt_python_file_is_named(fake: dict, tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _linked_copy(fake["py_dir"], folder, skip="data_batch_2")
    (folder / "data_batch_2").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match=r"data_batch_2 is unreadable"):
        load_cifar10(tmp_path)


def test_wrong_shape_python_file_is_named(fake: dict, tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    _linked_copy(fake["py_dir"], folder, skip="data_batch_1")
    with (folder / "data_batch_1").open("wb") as f:
        pickle.dump({b"data": np.zeros((10, 3072), np.uint8), b"labels": [0] * 10}, f)
    with pytest.raises(DataError, match=r"data_batch_1 does not hold b'data' uint8 \[10000, 3072\]"):
        load_cifar10(tmp_path)


def py2_pickle(obj: object) -> bytes:
    """`obj` as Python 2's cPickle.dump(obj, f, 2) writes it, the format of the official cifar-10-batches-py files:
    str as BINSTRING, numpy arrays through numpy.core.multiarray._reconstruct with the raw bytes as their state."""
    out = bytearray(b"\x80\x02")

    def put(o: object) -> None:
        if isinstance(o, dict):
            out.extend(b"}(")
            for key, value in o.items():
                put(key)
                put(value)
            out.extend(b"u")
        elif isinstance(o, (list, tuple)):
            out.extend(b"](" if isinstance(o, list) else b"(")
            for item in o:
                put(item)
            out.extend(b"e" if isinstance(o, list) else b"t")
        elif o is None:
            out.extend(b"N")
        elif isinstance(o, bytes):
            out.extend(b"U" + bytes([len(o)]) + o if len(o) < 256 else b"T" + struct.pack("<I", len(o)) + o)
        elif isinstance(o, int):
            out.extend(b"K" + bytes([o]) if 0 <= o < 256 else b"J" + struct.pack("<i", o))
        elif isinstance(o, np.ndarray):
            assert o.dtype == np.uint8 and o.flags.c_contiguous
            out.extend(b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R(K\x01")
            put(tuple(o.shape))
            out.extend(b"cnumpy\ndtype\nU\x02u1K\x00K\x01\x87R")
            put((3, b"|", None, None, None, -1, -1, 0))
            out.extend(b"b\x89")
            put(o.tobytes())
            out.extend(b"tb")
        else:
            raise TypeError(type(o))

    put(obj)
    return bytes(out + b".")


def write_py2_batches(records: dict[str, np.ndarray], folder: Path) -> None:
    """cifar-10-batches-py in the official layout from [10000, 3073] label+pixel records."""
    folder.mkdir(parents=True)
    for i, (name, r) in enumerate(records.items()):
        batch = {b"batch_label": f"batch {i}".encode(), b"labels": r[:, 0].tolist(),
                 b"data": np.ascontiguousarray(r[:, 1:]), b"filenames": [f"img_{k}.png".encode() for k in range(3)]}
        (folder / name).write_bytes(py2_pickle(batch))
    meta = {b"num_cases_per_batch": 10_000, b"label_names": [c.encode() for c in CLASSES], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(py2_pickle(meta))


def test_python2_format_batches_load(fake: dict, loaded, tmp_path: Path) -> None:
    head = py2_pickle({b"data": np.zeros((2, 3), np.uint8)})
    assert head.startswith(b"\x80\x02}(U\x04datacnumpy.core.multiarray\n_reconstruct\n")
    write_py2_batches(fake["records"], tmp_path / "cifar-10-batches-py")
    py2 = load_cifar10(tmp_path)
    assert py2.classes == CLASSES
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(py2, field), getattr(loaded, field)), field


class RunsCode:
    """Unpickling it calls `call(*args)`: a pickle that runs code, as any pickle may."""

    def __init__(self, call, *args):
        self.call, self.args = call, args

    def __reduce__(self):
        return self.call, self.args


def code_running_batches(marker: Path) -> dict[str, object]:
    touch = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    good = {b"data": np.zeros((10_000, 3072), np.uint8), b"labels": [0] * 10_000}
    return {
        "os.system": RunsCode(os.system, f"touch '{marker}'"),
        "builtins.exec": RunsCode(builtins.exec, touch),
        "exec hidden in the labels": {**good, b"labels": [0] * 9_999 + [RunsCode(builtins.exec, touch)]},
    }


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("variant", ["os.system", "builtins.exec", "exec hidden in the labels"])
def test_code_running_pickle_is_refused(fake: dict, tmp_path: Path, variant: str, protocol: int) -> None:
    marker = tmp_path / "code-ran"
    folder = tmp_path / "cifar-10-batches-py"
    _linked_copy(fake["py_dir"], folder, skip="data_batch_1")
    (folder / "data_batch_1").write_bytes(pickle.dumps(code_running_batches(marker)[variant], protocol=protocol))
    with pytest.raises(DataError) as info:
        load_cifar10(tmp_path)
    message = str(info.value)
    assert "\n" not in message
    assert f"CIFAR-10 file {folder / 'data_batch_1'} is refused: it names " in message
    named = {"os.system": "posix.system", "builtins.exec": "__builtin__.exec" if protocol == 2 else "builtins.exec",
             "exec hidden in the labels": ""}[variant]  # there, protocol 2 meets _codecs.encode (its bytes) first
    assert f"it names {named}" in message
    assert not marker.exists()


def test_code_running_meta_file_is_refused(fake: dict, tmp_path: Path) -> None:
    marker = tmp_path / "code-ran"
    folder = tmp_path / "cifar-10-batches-py"
    _linked_copy(fake["py_dir"], folder, skip="batches.meta")
    (folder / "batches.meta").write_bytes(pickle.dumps(code_running_batches(marker)["os.system"]))
    with pytest.raises(DataError, match=r"batches\.meta is refused: it names posix\.system"):
        load_cifar10(tmp_path)
    assert not marker.exists()


@pytest.mark.skipif("EDNAS_DATA_ROOT" not in os.environ, reason="EDNAS_DATA_ROOT is not set (real CIFAR-10 absent)")
def test_real_cifar10() -> None:
    data = load_cifar10(Path(os.environ["EDNAS_DATA_ROOT"]) / "cifar-10-batches-bin")
    assert data.train_images.shape == (50_000, 3, 32, 32) and data.test_images.shape == (10_000, 3, 32, 32)
    assert data.train_labels[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]
    assert data.test_labels[:10].tolist() == [3, 8, 8, 0, 6, 6, 1, 6, 3, 1]
    assert torch.bincount(data.train_labels).tolist() == [5000] * 10
    assert torch.bincount(data.test_labels).tolist() == [1000] * 10
    assert data.classes[0] == "airplane" and data.classes[9] == "truck"
    mean, std = channel_stats(data.train_images)
    assert np.allclose(mean, CIFAR10_MEAN, atol=1e-3) and np.allclose(std, CIFAR10_STD, atol=1e-3)


@pytest.mark.skipif("EDNAS_DATA_ROOT" not in os.environ, reason="EDNAS_DATA_ROOT is not set (real CIFAR-10 absent)")
def test_real_cifar10_in_the_python_format(tmp_path: Path) -> None:
    """The real records as official-format python batches (the python version itself is not in EDNAS_DATA_ROOT
    when only the binary one is) load through the restricted unpickler exactly as the binary files do."""
    root = Path(os.environ["EDNAS_DATA_ROOT"])
    if (root / "cifar-10-batches-py").is_dir():
        folder = root / "cifar-10-batches-py"
    else:
        records = {name: np.fromfile(root / "cifar-10-batches-bin" / f"{name}.bin", np.uint8).reshape(-1, 3073)
                   for name in NAMES}
        folder = tmp_path / "cifar-10-batches-py"
        write_py2_batches(records, folder)
    data = load_cifar10(folder)
    binary = load_cifar10(root / "cifar-10-batches-bin")
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert torch.equal(getattr(data, field), getattr(binary, field)), field
