"""Atomic writes and checkpoint loading: complete files, no temp files left, old content kept on failure."""

import os

import pytest
import torch

from ednas_core import checkpoint
from ednas_core.checkpoint import atomic_write_bytes, atomic_write_text, load_checkpoint, save_checkpoint


def test_atomic_write_text_writes_complete_file_and_no_temp(tmp_path):
    path = tmp_path / "sub" / "metrics.json"  # the folder is created
    atomic_write_text(path, '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'
    atomic_write_text(path, "x" * 100_000)
    assert path.read_text() == "x" * 100_000
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_save_and_load_checkpoint_round_trip(tmp_path):
    path = tmp_path / "ckpt.pt"
    state = {"epoch": 3, "weights": torch.arange(10.0), "nested": {"lr": 0.05, "arch": ((0, 1), (1, 2))}}
    save_checkpoint(state, path)
    loaded = load_checkpoint(path)
    assert loaded["epoch"] == 3 and loaded["nested"] == state["nested"]
    assert torch.equal(loaded["weights"], state["weights"])
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def _fail(*args, **kwargs):
    raise OSError("disk full")


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_failed_write_keeps_previous_content_and_leaves_no_temp(tmp_path, monkeypatch, where):
    text_path = tmp_path / "genotype.json"
    ckpt_path = tmp_path / "ckpt.pt"
    atomic_write_text(text_path, "old\n")
    save_checkpoint({"epoch": 1}, ckpt_path)
    monkeypatch.setattr(checkpoint.os, where, _fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_text(text_path, "new content\n")
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2}, ckpt_path)
    monkeypatch.undo()
    assert text_path.read_text() == "old\n"
    assert load_checkpoint(ckpt_path) == {"epoch": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "genotype.json"]


def test_interrupt_during_write_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    atomic_write_bytes(path, b"old")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]


def test_load_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint({"weights": torch.randn(1000)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RuntimeError) as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


def test_load_foreign_or_empty_file_names_the_file(tmp_path):
    for name, content in [("empty.pt", b""), ("text.pt", b"not a checkpoint")]:
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(RuntimeError, match=name):
            load_checkpoint(path)
    assert not os.path.exists(tmp_path / "missing.pt")
    with pytest.raises(RuntimeError, match="missing.pt"):
        load_checkpoint(tmp_path / "missing.pt")
