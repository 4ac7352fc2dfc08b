"""Atomic writes and state files: complete files, no temp files left, old content kept on failure; a nested state
comes back equal with its types, equal states give identical bytes, and loading never runs code."""

import io
import json
import math
import pickle

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save as save_tensors
from torch import nn

from ednas_core import checkpoint
from ednas_core.checkpoint import (CorruptStateFile, StateFileError, applying, atomic_write_bytes, atomic_write_text,
                                   encode_state, load_checkpoint, require_keys, save_checkpoint, set_aside)


def test_atomic_write_text_writes_complete_file_and_no_temp(tmp_path):
    path = tmp_path / "sub" / "metrics.json"  # the folder is created
    atomic_write_text(path, '{"a": 1}\n')
    assert path.read_text() == '{"a": 1}\n'
    atomic_write_text(path, "x" * 100_000)
    assert path.read_text() == "x" * 100_000
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def rich_state() -> dict:
    """Every kind of value a state of this project holds (and some it might)."""
    g = torch.Generator().manual_seed(7)
    generator = torch.Generator().manual_seed(3)
    grid = torch.randn(4, 6, generator=g, dtype=torch.float64)
    return {
        "epoch": 3, "big": 2**70, "lr": 0.05, "neg_zero": -0.0, "nan": math.nan, "inf": math.inf, "-inf": -math.inf,
        "name": "ednas ✓", "flag": True, "nothing": None, "empty": {}, "no_items": [], "no_tuple": (),
        "arch": ((0, 1), (1, 2)), "lists": [[1, 2], (3, [4.5, "x"])],
        "int_keys": {0: {"step": torch.tensor(5.0)}, 1: "b", -3: None},  # an optimizer's `state`
        "mixed_keys": {1: "int", "1": "str", 2.5: "float", None: "none", True: "bool"},
        "weights": torch.arange(10.0), "scalar": torch.tensor(2, dtype=torch.int64), "nothing_in": torch.zeros(0, 3),
        "dtypes": {str(d): torch.ones(3, dtype=d) for d in
                   (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
                    torch.int64, torch.uint8, torch.bool)},
        "rng": generator.get_state(),  # torch.Generator state: a uint8 tensor
        "transposed": grid.t(), "every_other": grid[:, ::2], "row": grid[1],
        "numpy": {"probs": np.linspace(0, 1, 6).reshape(2, 3), "counts": np.arange(12, dtype=np.int64).reshape(3, 4),
                  "f32": np.ones(2, np.float32), "bools": np.array([True, False]), "strided": np.arange(10)[::3],
                  "empty": np.zeros((0,), np.int32)},
        "np_scalars": [np.float64(0.25), np.float32(1.5), np.int64(-4), np.bool_(True), np.float64("nan")],
        "history": [{"epoch": 0, "metrics": {"reward": 0.5, "baseline": math.nan}}],
    }


def assert_same(a, b, where="state"):
    """Equal values of the same types (tuple is not list, numpy is not torch, dtypes and shapes equal)."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} != {type(b).__name__}"
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), where
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b), where
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}/{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}/{i}")
    elif isinstance(a, (float, np.floating)) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b)), where


def test_round_trip_keeps_values_and_types(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    state = rich_state()
    save_checkpoint(state, path)
    loaded = load_checkpoint(path)
    assert_same(state, loaded)
    assert loaded["numpy"]["probs"].flags.writeable and loaded["weights"].add_(1)[0] == 1  # usable, not read-only
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


def test_equal_states_give_identical_bytes(tmp_path):
    def trained_state():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
        optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
        net(torch.randn(8, 4)).sum().backward()
        optimizer.step()
        return {"net": net.state_dict(), "optimizer": optimizer.state_dict(), "more": rich_state()}

    save_checkpoint(trained_state(), tmp_path / "a.safetensors")
    save_checkpoint(trained_state(), tmp_path / "b.safetensors")
    assert (tmp_path / "a.safetensors").read_bytes() == (tmp_path / "b.safetensors").read_bytes()
    state = trained_state()
    state["net"]["0.bias"] = state["net"]["0.bias"] + 1e-6  # and a different state gives other bytes
    assert encode_state(state) != (tmp_path / "a.safetensors").read_bytes()


def test_the_file_is_plain_safetensors_keyed_by_state_path(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint({"state": {"child": {"net": {"cell.weight": torch.ones(2)}}}, "history": [np.zeros(3)]}, path)
    with safe_open(path, framework="pt") as f:
        assert sorted(f.keys()) == ["history/0", "state/child/net/cell.weight"]
        assert torch.equal(f.get_tensor("state/child/net/cell.weight"), torch.ones(2))
        skeleton = json.loads(f.metadata()["ednas.state"])
    assert skeleton["format"] == "ednas-state/1"


class TiedLM(nn.Module):
    """A language model whose decoder weight is its embedding (shared storage in its state_dict)."""

    def __init__(self):
        super().__init__()
        self.encoder = nn.Embedding(5, 3)
        self.decoder = nn.Linear(3, 5)
        self.decoder.weight = self.encoder.weight


def test_tied_weights_are_stored_once_and_come_back_tied(tmp_path):
    path = tmp_path / "lm.safetensors"
    model = TiedLM()
    save_checkpoint({"model": model.state_dict()}, path)
    with safe_open(path, framework="pt") as f:
        assert sorted(f.keys()) == ["model/decoder.bias", "model/encoder.weight"]
    loaded = load_checkpoint(path)["model"]
    assert loaded["decoder.weight"] is loaded["encoder.weight"]
    fresh = TiedLM()
    fresh.load_state_dict(loaded)
    assert torch.equal(fresh.encoder.weight, model.encoder.weight) and fresh.decoder.weight is fresh.encoder.weight


def test_views_of_one_storage_are_stored_as_themselves(tmp_path):
    base = torch.arange(12.0).reshape(3, 4)
    state = {"all": base, "t": base.t(), "tail": base[1:], "col": base[:, 1], "again": base.view(3, 4)}
    save_checkpoint(state, tmp_path / "views.safetensors")
    loaded = load_checkpoint(tmp_path / "views.safetensors")
    assert_same(state, loaded)
    assert loaded["again"] is loaded["all"]  # the same view: stored once


def test_unsupported_values_are_refused_when_saving(tmp_path):
    with pytest.raises(TypeError, match="cannot hold a set .*at epochs"):
        save_checkpoint({"epochs": {1, 2}}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="tuple dict key"):
        save_checkpoint({(1, 2): 3}, tmp_path / "x.safetensors")
    assert not (tmp_path / "x.safetensors").exists()


def _fail(*args, **kwargs):
    raise OSError("disk full")


@pytest.mark.parametrize("where", ["replace", "fsync"])
def test_failed_write_keeps_previous_content_and_leaves_no_temp(tmp_path, monkeypatch, where):
    text_path = tmp_path / "genotype.json"
    ckpt_path = tmp_path / "ckpt.safetensors"
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.safetensors", "genotype.json"]


def test_interrupt_during_write_leaves_no_temp(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.safetensors"
    atomic_write_bytes(path, b"old")

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.os, "replace", interrupt)
    with pytest.raises(KeyboardInterrupt):
        atomic_write_bytes(path, b"new")
    monkeypatch.undo()
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.safetensors"]


# --- what loading refuses -----------------------------------------------------------------------------------

class MakesMarker:
    """Unpickling it creates the marker file: what a tampered state file could do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def pickle_payloads(marker) -> dict[str, bytes]:
    buffer = io.BytesIO()
    torch.save({"child": {"net": MakesMarker(marker)}, "policy": {}}, buffer)  # the old torch.save format
    return {"torch.save": buffer.getvalue(), "pickle": pickle.dumps({"child": MakesMarker(marker)})}


@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
def test_loading_a_pickle_never_runs_it(tmp_path, kind):
    proof = tmp_path / "proof"  # the payload does run where pickles are loaded
    payload = pickle_payloads(proof)[kind]
    torch.load(io.BytesIO(payload), weights_only=False) if kind == "torch.save" else pickle.loads(payload)
    assert proof.exists()
    marker = tmp_path / "marker"
    path = tmp_path / "supernet.safetensors"
    path.write_bytes(pickle_payloads(marker)[kind])
    with pytest.raises(CorruptStateFile) as err:
        load_checkpoint(path, "rerun the search")
    assert not marker.exists()
    assert str(err.value) == f"{path} cannot be read (cut short, or not a safetensors file); rerun the search"


def test_load_truncated_checkpoint_names_the_file(tmp_path):
    path = tmp_path / "ckpt.safetensors"
    save_checkpoint({"weights": torch.randn(1000), "epoch": 4}, path)
    data = path.read_bytes()
    header_end = 8 + int.from_bytes(data[:8], "little")
    for cut, reason in [(len(data) - 1, "cut short"), (header_end + 10, "cut short"),
                        (header_end - 1, "cut short, or not a safetensors file"),
                        (7, "cut short, or not a safetensors file")]:
        path.write_bytes(data[:cut])
        with pytest.raises(CorruptStateFile) as err:
            load_checkpoint(path)
        assert str(err.value) == f"{path} cannot be read ({reason}); delete it to start over"


def test_load_foreign_or_empty_file_names_the_file(tmp_path):
    foreign = tmp_path / "foreign.safetensors"
    foreign.write_bytes(save_tensors({"w": torch.ones(2)}))  # a safetensors file, but not a state of ours
    for path, reason in [(tmp_path / "empty.safetensors", "empty file"),
                         (tmp_path / "text.safetensors", "cut short, or not a safetensors file"),
                         (foreign, "a safetensors file without an EDNAS state")]:
        if not path.exists():
            path.write_bytes(b"" if "empty" in path.name else b"not a checkpoint")
        with pytest.raises(CorruptStateFile) as err:
            load_checkpoint(path)
        assert str(err.value) == f"{path} cannot be read ({reason}); delete it to start over"
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(StateFileError) as err:
        load_checkpoint(missing)
    assert not isinstance(err.value, CorruptStateFile)  # nothing to set aside
    assert str(err.value) == f"{missing} cannot be read (No such file or directory); delete it to start over"


@pytest.mark.parametrize("skeleton, reason", [
    ({"format": "ednas-state/1", "state": {"tensor": "nowhere"}}, "refers to a tensor 'nowhere'"),
    ({"format": "ednas-state/1", "state": {"pickle": "x"}}, "unexpected state entry"),
    ({"format": "ednas-state/1", "state": {"float": "1e9999x"}}, "unexpected state entry"),
    ({"format": "ednas-state/1", "state": {"numpy_scalar": "O", "value": 1}}, "unexpected state entry"),
    ({"format": "ednas-state/1", "state": {"dict": [[[1], 2]]}}, "unexpected dict key"),
    ({"format": "ednas-state/1", "state": {"numpy_scalar": "|i1", "value": 300}}, "unexpected state entry"),
    ({"format": "ednas-state/1", "state": {"ndarray": "w"}}, "unexpected state entry"),  # bfloat16: numpy has none
    ({"format": "ednas-state/9", "state": 1}, "state format 'ednas-state/9'"),
])
def test_malformed_state_is_corrupt(tmp_path, skeleton, reason):
    path = tmp_path / "ckpt.safetensors"
    tensors = {"w": torch.ones(1, dtype=torch.bfloat16)}
    path.write_bytes(save_tensors(tensors, metadata={"ednas.state": json.dumps(skeleton)}))
    with pytest.raises(CorruptStateFile, match=reason):
        load_checkpoint(path)


def test_set_aside_picks_a_free_name(tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    for n in (1, 2):
        path.write_bytes(b"bad %d" % n)
        assert set_aside(path) == tmp_path / f"checkpoint.safetensors.corrupt-{n}"
    assert not path.exists() and (tmp_path / "checkpoint.safetensors.corrupt-2").read_bytes() == b"bad 2"


def test_a_state_without_the_expected_entries_is_one_line(tmp_path):
    path = tmp_path / "supernet.safetensors"
    with pytest.raises(StateFileError) as err:
        require_keys({"child": {}}, ("child", "policy"), path, "rerun it")
    assert str(err.value) == f"{path} does not hold the expected state (no entry 'policy'); rerun it"
    with pytest.raises(StateFileError, match=r"\(holds a list, not a dict\)"):
        require_keys([], ("child",), path, "rerun it")
    net = nn.Linear(2, 2)
    with pytest.raises(StateFileError) as err, applying(path, "rerun it"):
        net.load_state_dict({"weight": torch.ones(2, 2)})
    message = str(err.value)
    assert message.startswith(f"{path} does not hold the expected state (Error(s) in loading state_dict for Linear")
    assert "bias" in message and message.endswith("; rerun it") and "\n" not in message
    with pytest.raises(StateFileError, match=r"\(no entry 'optimizer'\); rerun it$"), applying(path, "rerun it"):
        {}["optimizer"]
    with pytest.raises(RuntimeError, match="not a state problem"), applying(path, "rerun it"):
        raise RuntimeError("not a state problem")  # other errors keep their traceback


def test_a_failed_write_names_the_file_being_written(tmp_path, monkeypatch):
    """A full disk fails in the write to the open file, whose error names no file; the stage's one-line error
    needs the path (stages/common.py run_stage)."""
    import errno

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint.os, "fsync", full)
    with pytest.raises(OSError) as err:
        atomic_write_text(tmp_path / "metrics.json", "{}\n")
    assert err.value.errno == errno.ENOSPC and err.value.filename == str(tmp_path / "metrics.json")
    assert list(tmp_path.iterdir()) == []
