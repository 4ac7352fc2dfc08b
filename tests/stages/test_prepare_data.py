"""prepare-data: a temp experiment's data.root and the prepared-dataset files (each task's raw data: tests/tasks/)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from ednas_core.data import DataError, ImageDataset
from ednas_core.data.prepared import (DATASET_FILE, MANIFEST_FILE, load_prepared, md5sum, read_manifest,
                                      save_prepared)


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert message and "\n" not in message, message
    return message


# --- a `dvc exp run --temp/--queue` copy: the repository's data.root -----------------------------------------

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture
def temp_experiment_copy(tmp_path, monkeypatch):
    """A repository whose git-ignored data/raw holds a small PTB, and the copy DVC runs a temp experiment in
    (cwd; DVC_ROOT names the repository): params.yaml with task ptb, no data/raw. Downloads are recorded."""
    from ednas_core.data.ptb import PTB_FILES
    from tests.helpers import stages_without_tracking
    from tools.workspace import set_params
    import ednas_core.tasks.ptb as ptb_task

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
    monkeypatch.setattr(ptb_task, "download_ptb", downloads.append)
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
