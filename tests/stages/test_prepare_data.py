"""prepare-data: the task's raw data (digits, CIFAR-10 bin/py, offline download) and the prepared-dataset files."""

from __future__ import annotations

import hashlib
import io
import json
import os
import socket
import sys
import types
import urllib.error
from pathlib import Path

import pytest
import torch

from ednas_core.data import DataError, ImageDataset
from ednas_core.data.prepared import (DATASET_FILE, MANIFEST_FILE, load_prepared, md5sum, read_manifest,
                                      save_prepared)
from stages.prepare_data import CIFAR_FILES, _cifar_sources, load_task_data

BIN, PY = "cifar-10-batches-bin", "cifar-10-batches-py"


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message, message
    return message


# --- digits -------------------------------------------------------------------------------------------------

def test_digits_task_data(tmp_path):
    dataset, sources = load_task_data("digits", tmp_path / "unused")
    assert isinstance(dataset, ImageDataset)
    assert tuple(dataset.train_images.shape) == (1497, 1, 8, 8)
    assert tuple(dataset.test_images.shape) == (300, 1, 8, 8)
    assert dataset.train_images.dtype == torch.uint8 and dataset.test_images.dtype == torch.uint8
    assert dataset.num_classes == 10 and dataset.classes == [str(d) for d in range(10)]
    assert set(dataset.train_labels.tolist()) == set(range(10))
    assert int(dataset.train_images.max()) == 255  # 0..16 rescaled to 0..255
    (key, value), = sources.items()
    assert "load_digits" in key and value.startswith("scikit-learn ")
    assert not (tmp_path / "unused").exists()


# --- CIFAR-10: missing and incomplete data ------------------------------------------------------------------

@pytest.fixture
def fake_cifar10(monkeypatch):
    """torchvision's CIFAR10 replaced by an offline stand-in that records its calls (a stand-in
    torchvision.datasets module: the stage imports CIFAR10 from it at call time; importing the real one is slow)."""
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
        load_task_data("cifar10", tmp_path)
    message = one_line(err)
    for name in ["data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin", "data_batch_5.bin", "test_batch.bin"]:
        assert name in message
    assert "missing data_batch_1.bin" not in message
    assert str(folder) in message
    assert fake_cifar10 == []  # the folder exists: no download attempted


def test_cifar10_empty_root_tries_download_then_one_line(tmp_path, fake_cifar10):
    before = socket.getdefaulttimeout()
    with pytest.raises(DataError) as err:
        load_task_data("cifar10", tmp_path)
    message = one_line(err)
    assert f"{BIN}/" in message and f"{PY}/" in message
    assert str(tmp_path) in message
    assert "URLError" in message
    assert len(fake_cifar10) == 1
    assert fake_cifar10[0]["download"] is True and Path(fake_cifar10[0]["root"]) == tmp_path
    assert fake_cifar10[0]["timeout"] == 30          # a bounded download ...
    assert socket.getdefaulttimeout() == before      # ... and the global timeout restored afterwards


# --- _cifar_sources -----------------------------------------------------------------------------------------

def write_dummy_files(folder: Path) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    contents = {}
    for i, name in enumerate(CIFAR_FILES[folder.name]):
        contents[name] = f"dummy {i}".encode()
        (folder / name).write_bytes(contents[name])
    return contents


def test_cifar_sources_py_with_wrong_md5(tmp_path):
    write_dummy_files(tmp_path / PY)
    with pytest.raises(DataError) as err:
        _cifar_sources(tmp_path)
    message = one_line(err)
    assert message.startswith(f"{tmp_path / PY}: md5 of ")
    for name in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"]:
        assert name in message
    assert "official" in message


def test_cifar_sources_py_names_only_differing_files(tmp_path, monkeypatch):
    import stages.prepare_data as prepare_data

    contents = write_dummy_files(tmp_path / PY)
    official = dict(prepare_data.OFFICIAL_PY_MD5)
    for name in ["data_batch_1", "data_batch_2", "data_batch_4", "data_batch_5"]:  # pretend these are official
        official[name] = hashlib.md5(contents[name]).hexdigest()
    monkeypatch.setattr(prepare_data, "OFFICIAL_PY_MD5", official)
    with pytest.raises(DataError) as err:
        _cifar_sources(tmp_path)
    message = one_line(err)
    assert "md5 of data_batch_3, test_batch differs" in message


def test_cifar_sources_bin_returns_md5_of_six_files(tmp_path):
    contents = write_dummy_files(tmp_path / BIN)
    sources = _cifar_sources(tmp_path)
    assert sources == {f"{BIN}/{name}": hashlib.md5(data).hexdigest() for name, data in contents.items()}
    assert len(sources) == 6


def test_cifar_sources_incomplete_folder_is_empty(tmp_path):
    write_dummy_files(tmp_path / BIN)
    (tmp_path / BIN / "test_batch.bin").unlink()
    assert _cifar_sources(tmp_path) == {}


# --- real CIFAR-10 ------------------------------------------------------------------------------------------

def test_real_cifar10():
    if not os.environ.get("EDNAS_DATA_ROOT"):
        pytest.skip("EDNAS_DATA_ROOT is not set (the folder holding cifar-10-batches-bin/)")
    root = Path(os.environ["EDNAS_DATA_ROOT"])
    if not (root / BIN).is_dir() and not (root / PY).is_dir():
        pytest.skip(f"no CIFAR-10 folder in EDNAS_DATA_ROOT={root}")
    dataset, sources = load_task_data("cifar10", root)
    assert tuple(dataset.train_images.shape) == (50000, 3, 32, 32)
    assert tuple(dataset.test_images.shape) == (10000, 3, 32, 32)
    assert dataset.num_classes == 10
    assert torch.bincount(dataset.test_labels).tolist() == [1000] * 10
    assert torch.bincount(dataset.train_labels).tolist() == [5000] * 10
    assert len(sources) == 6
    assert all(len(v) == 32 for v in sources.values())


# --- a `dvc exp run --temp/--queue` copy: the repository's data.root -----------------------------------------

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def temp_experiment_copy(tmp_path, monkeypatch):
    """A repository whose git-ignored data/raw holds a small PTB, and the copy DVC runs a temp experiment in
    (cwd; DVC_ROOT names the repository): params.yaml with task ptb, no data/raw. Downloads are recorded."""
    from ednas_core.data.ptb import PTB_FILES
    from tests.helpers import stages_without_tracking
    from tools.workspace import set_params
    import stages.prepare_data as prepare_data

    repo = tmp_path / "repo"
    copy = repo / ".dvc" / "tmp" / "exps" / "run" / "abc"
    copy.mkdir(parents=True)
    (repo / "data" / "raw").mkdir(parents=True)
    for name, text in zip(PTB_FILES, (" the cat sat \n the dog \n" * 50, " the dog sat \n", " cat \n")):
        (repo / "data" / "raw" / name).write_text(text)
    (copy / "params.yaml").write_text((PROJECT / "params.yaml").read_text())
    set_params(copy / "params.yaml", {"task": "ptb"})
    stages_without_tracking(monkeypatch, copy)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    downloads: list[Path] = []
    monkeypatch.setattr(prepare_data, "_download_ptb", downloads.append)
    return repo, copy, downloads


def test_temp_experiment_reads_the_repositorys_raw_data(temp_experiment_copy):
    import stages.prepare_data as prepare_data

    repo, copy, downloads = temp_experiment_copy
    prepare_data.main()
    assert downloads == []                       # found in the repository, not downloaded into the copy
    info = json.loads((copy / "metrics" / "info" / "prepare.json").read_text())
    assert info["task"] == "ptb" and (copy / "data" / "prepared" / MANIFEST_FILE).is_file()
    assert json.loads((copy / "metrics" / "prepare.json").read_text())["train_tokens"] == 350  # (3 words + <eos>, 2 words + <eos>) x 50
    assert not (copy / "data" / "raw").exists()


def test_temp_experiment_downloads_into_the_repository(temp_experiment_copy):
    import stages.prepare_data as prepare_data

    repo, copy, downloads = temp_experiment_copy
    for name in (repo / "data" / "raw").iterdir():
        name.unlink()
    with pytest.raises(DataError):              # the recording stand-in downloads nothing
        prepare_data.main()
    assert downloads == [repo.resolve() / "data" / "raw"]


# --- ednas_core.data.prepared -------------------------------------------------------------------------------

def test_save_then_load_prepared(tmp_path, pattern_dataset):
    folder = tmp_path / "prepared"
    manifest = save_prepared(pattern_dataset, folder, "digits", {"raw/file": "abc"})
    assert (manifest.task, manifest.train, manifest.test) == ("digits", 256, 128)
    assert manifest.shape == [3, 8, 8] and manifest.sources == {"raw/file": "abc"}
    assert manifest.dataset_md5 == md5sum(folder / DATASET_FILE)
    assert sorted(p.name for p in folder.iterdir()) == [DATASET_FILE, MANIFEST_FILE]  # no temp files left
    loaded = load_prepared(folder, "digits")
    assert torch.equal(loaded.train_images, pattern_dataset.train_images)
    assert torch.equal(loaded.train_labels, pattern_dataset.train_labels)
    assert torch.equal(loaded.test_images, pattern_dataset.test_images)
    assert torch.equal(loaded.test_labels, pattern_dataset.test_labels)
    assert loaded.classes == pattern_dataset.classes
    assert loaded.mean == pytest.approx(pattern_dataset.mean) and loaded.std == pytest.approx(pattern_dataset.std)


def test_load_prepared_keeps_given_mean_std(tmp_path, pattern_dataset):
    dataset = ImageDataset(pattern_dataset.train_images, pattern_dataset.train_labels, pattern_dataset.test_images,
                           pattern_dataset.test_labels, pattern_dataset.classes, mean=(0.1, 0.2, 0.3),
                           std=(0.4, 0.5, 0.6))
    save_prepared(dataset, tmp_path, "cifar10", {})
    loaded = load_prepared(tmp_path, "cifar10")
    assert loaded.mean == (0.1, 0.2, 0.3) and loaded.std == (0.4, 0.5, 0.6)


def test_load_prepared_wrong_task(tmp_path, pattern_dataset):
    save_prepared(pattern_dataset, tmp_path, "digits", {})
    with pytest.raises(DataError) as err:
        load_prepared(tmp_path, "cifar10")
    message = one_line(err)
    assert "'digits'" in message and "'cifar10'" in message and "prepare-data" in message


def test_load_prepared_corrupt(tmp_path, pattern_dataset):
    save_prepared(pattern_dataset, tmp_path, "digits", {})
    data = bytearray((tmp_path / DATASET_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / DATASET_FILE).write_bytes(bytes(data))
    with pytest.raises(DataError) as err:
        load_prepared(tmp_path, "digits")
    assert "corrupt" in one_line(err)


@pytest.mark.parametrize("remove", [None, DATASET_FILE, MANIFEST_FILE])
def test_load_prepared_missing(tmp_path, pattern_dataset, remove):
    folder = tmp_path / "prepared"
    if remove:
        save_prepared(pattern_dataset, folder, "digits", {})
        (folder / remove).unlink()
    with pytest.raises(DataError) as err:
        load_prepared(folder, "digits")
    message = one_line(err)
    assert str(folder) in message and "run the prepare-data stage" in message


# --- a damaged or foreign manifest.json / dataset.pt: one line naming the file and the fix --------------------

def rewrite_manifest(folder: Path, change) -> Path:
    path = folder / MANIFEST_FILE
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize("change, expected", [
    (lambda m: m.pop("dataset_md5"), "lacks the keys dataset_md5"),
    (lambda m: m.update(checksum="abc"), "has unknown keys checksum"),
    (lambda m: (m.pop("train"), m.update(n_train=5)), "lacks the keys train; has unknown keys n_train"),
    (lambda m: m.update(train="many", kind="audio"), "has bad values of train, kind"),
])
def test_load_prepared_manifest_keys(tmp_path, pattern_dataset, change, expected):
    save_prepared(pattern_dataset, tmp_path, "digits", {})
    path = rewrite_manifest(tmp_path, change)
    with pytest.raises(DataError) as err:
        load_prepared(tmp_path, "digits")
    message = one_line(err)
    assert message.startswith(f"{path} {expected} ")
    assert message.endswith("rerun `dvc repro prepare-data`")


@pytest.mark.parametrize("content, expected", [
    (lambda text: text[: len(text) // 2], "is not valid JSON at line "),
    (lambda text: "", "is not valid JSON at line 1 column 1"),
    (lambda text: "[1, 2]", "holds a JSON list, not an object"),
])
def test_load_prepared_unparsable_manifest(tmp_path, pattern_dataset, content, expected):
    save_prepared(pattern_dataset, tmp_path, "digits", {})
    path = tmp_path / MANIFEST_FILE
    path.write_text(content(path.read_text()))
    with pytest.raises(DataError) as err:
        load_prepared(tmp_path, "digits")
    message = one_line(err)
    assert message.startswith(f"{path} {expected}") and "rerun `dvc repro prepare-data`" in message


def test_read_manifest_is_the_saved_one(tmp_path, pattern_dataset):
    saved = save_prepared(pattern_dataset, tmp_path, "digits", {"raw": "md5"})
    assert read_manifest(tmp_path) == saved


class Foreign:
    """Not a tensor, list or dict: torch.load(weights_only=True) refuses it."""


@pytest.mark.parametrize("payload", ["truncated", "foreign object", "other layout", "not torch"])
def test_load_prepared_unreadable_data_file(tmp_path, pattern_dataset, payload):
    """A data file whose md5 the manifest does hold (so the md5 check passes) but that is no prepared dataset."""
    save_prepared(pattern_dataset, tmp_path, "digits", {})
    data_path = tmp_path / DATASET_FILE
    buffer = io.BytesIO()
    if payload == "truncated":
        buffer.write(data_path.read_bytes()[:5000])
    elif payload == "foreign object":
        torch.save({"train_images": Foreign()}, buffer)
    elif payload == "other layout":
        torch.save({"images": torch.zeros(3)}, buffer)
    else:
        buffer.write(b"plain text, not a torch file\n")
    data_path.write_bytes(buffer.getvalue())
    rewrite_manifest(tmp_path, lambda m: m.update(dataset_md5=md5sum(data_path)))
    with pytest.raises(DataError) as err:
        load_prepared(tmp_path, "digits")
    message = one_line(err)
    assert message.startswith(f"{data_path} is not a prepared images dataset (")
    assert "\x1b" not in message  # torch's weights-only refusal is many lines with terminal colours
    if payload == "foreign object":
        assert "holds objects other than tensors" in message
    assert message.endswith(f"delete {tmp_path} and rerun `dvc repro prepare-data`")
