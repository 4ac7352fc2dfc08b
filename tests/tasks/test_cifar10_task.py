"""The cifar10 task's raw data: CIFAR-10 bin/py folders, the md5 of the files read, an offline download."""

from __future__ import annotations

import hashlib
import os
import socket
import sys
import types
import urllib.error
from pathlib import Path

import pytest
import torch

import ednas_core.tasks.cifar10 as cifar10_task
from ednas_core.data import DataError
from ednas_core.tasks.cifar10 import CIFAR10, CIFAR_FILES, cifar_sources

BIN, PY = "cifar-10-batches-bin", "cifar-10-batches-py"


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message, message
    return message


# --- CIFAR-10: missing and incomplete data ------------------------------------------------------------------

@pytest.fixture
def fake_cifar10(monkeypatch):
    """torchvision's CIFAR10 replaced by an offline stand-in that records its calls (a stand-in
    torchvision.datasets module: the task imports CIFAR10 from it at call time; importing the real one is slow)."""
    calls = []

    def offline(root, train=True, download=False, **kwargs):
        calls.append({"root": root, "download": download, "timeout": socket.getdefaulttimeout()})
        raise urllib.error.URLError("offline")

    monkeypatch.setitem(sys.modules, "torchvision.datasets", types.SimpleNamespace(CIFAR10=offline))
    return calls


def test_cifar10_incomplete_bin_folder_names_missing_files(tmp_path, fake_cifar10):
    folder = tmp_path / BIN
    folder.mkdir()
    (folder / "data_batch_1.bin").write_bytes(b"\0" * 100)
    with pytest.raises(DataError) as err:
        CIFAR10.load_raw(tmp_path)
    message = one_line(err)
    for name in ["data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"]:
        assert name in message
    assert "missing data_batch_1.bin" not in message
    assert str(folder) in message
    assert fake_cifar10 == []  # the folder exists: no download attempted


def test_cifar10_empty_root_tries_download_then_one_line(tmp_path, fake_cifar10):
    before = socket.getdefaulttimeout()
    with pytest.raises(DataError) as err:
        CIFAR10.load_raw(tmp_path)
    message = one_line(err)
    assert f"{BIN}/" in message and f"{PY}/" in message
    assert str(tmp_path) in message
    assert "URLError" in message
    assert len(fake_cifar10) == 1
    assert fake_cifar10[0]["download"] is True and Path(fake_cifar10[0]["root"]) == tmp_path
    assert fake_cifar10[0]["timeout"] == 30          # a bounded download ...
    assert socket.getdefaulttimeout() == before      # ... and the global timeout restored afterwards


# --- cifar_sources -----------------------------------------------------------------------------------------

def write_dummy_files(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    contents = {}
    for i, name in enumerate(CIFAR_FILES[folder.name]):
        contents[name] = f"dummy {i}".encode()
        (folder / name).write_bytes(contents[name])
    return contents


def testcifar_sources_py_with_wrong_md5(tmp_path):
    write_dummy_files(tmp_path / PY)
    with pytest.raises(DataError) as err:
        cifar_sources(tmp_path)
    message = one_line(err)
    assert message.startswith(f"{tmp_path / PY}: md5 of ")
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        assert name in message
    assert "official" in message


def testcifar_sources_py_names_only_differing_files(tmp_path, monkeypatch):
    contents = write_dummy_files(tmp_path / PY)
    official = dict(cifar10_task.OFFICIAL_PY_MD5)
    for name in ["data_batch_1", "data_batch_2", "data_batch_4", "data_batch_5"]:  # pretend these are official
        official[name] = hashlib.md5(contents[name]).hexdigest()
    monkeypatch.setattr(cifar10_task, "OFFICIAL_PY_MD5", official)
    with pytest.raises(DataError) as err:
        cifar_sources(tmp_path)
    message = one_line(err)
    assert "md5 of data_batch_3, test_batch differs" in message


def testcifar_sources_bin_returns_md5_of_six_files(tmp_path):
    contents = write_dummy_files(tmp_path / BIN)
    sources = cifar_sources(tmp_path)
    assert sources == {f"{BIN}/{name}": hashlib.md5(data).hexdigest() for name, data in contents.items()}
    assert len(sources) == 6


def testcifar_sources_incomplete_folder_is_empty(tmp_path):
    write_dummy_files(tmp_path / BIN)
    (tmp_path / BIN / "test_batch.bin").unlink()
    assert cifar_sources(tmp_path) == {}


# --- real CIFAR-10 ------------------------------------------------------------------------------------------

def test_real_cifar10():
    if not os.environ.get("EDNAS_DATA_ROOT"):
        pytest.skip("EDNAS_DATA_ROOT is not set (the folder holding cifar-10-batches-bin/)")
    root = Path(os.environ["EDNAS_DATA_ROOT"])
    if not (root / BIN).is_dir() and not (root / PY).is_dir():
        pytest.skip(f"no CIFAR-10 folder in EDNAS_DATA_ROOT={root}")
    dataset, sources = CIFAR10.load_raw(root)
    assert tuple(dataset.train_images.shape) == (50000, 3, 32, 32)
    assert tuple(dataset.test_images.shape) == (10000, 3, 32, 32)
    assert dataset.num_classes == 10
    assert torch.bincount(dataset.test_labels).tolist() == [1000] * 10
    assert torch.bincount(dataset.train_labels).tolist() == [5000] * 10
    assert len(sources) == 6
    assert all(len(v) == 32 for v in sources.values())
