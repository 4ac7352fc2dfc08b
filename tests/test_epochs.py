"""The checkpointed epoch loop: resumes from its state file; a file that cannot be read (what a killed copy leaves,
or a tampered one) is set aside and the run starts over, saying so in one stderr line; a readable checkpoint
without the expected entries stops the run with one line naming the file."""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from ednas_core.checkpoint import StateFileError, load_checkpoint, save_checkpoint
from ednas_core.epochs import CheckpointedLoop, CheckpointMismatch, discard_unreadable


@dataclass
class Step:
    epoch: int
    epochs: int
    metrics: dict[str, float]


class Counter(CheckpointedLoop[Step]):
    report_type = Step
    what = "count"

    def __init__(self, path, epochs: int = 3, fingerprint: str = "a"):
        super().__init__(epochs, path, [], fingerprint)
        self.weights = torch.zeros(2)
        self.ran: list[int] = []

    def run_epoch(self, epoch: int) -> Step:
        self.weights += 1
        self.ran.append(epoch)
        return Step(epoch, self.epochs, {"w": float(self.weights[0])})

    def state_dict(self) -> dict:
        return {"weights": self.weights.clone(), "seen": np.arange(3)}

    def load_state_dict(self, state: dict) -> None:
        self.weights = state["weights"].clone()


def test_a_run_resumes_from_its_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.safetensors"
    Counter(path, epochs=2).run_epochs()
    resumed = Counter(path, epochs=4)
    assert resumed.run_epochs() == 2 and resumed.ran == [2, 3] and resumed.weights.tolist() == [4.0, 4.0]
    assert [s.metrics["w"] for s in resumed.history] == [1.0, 2.0, 3.0, 4.0]
    with pytest.raises(CheckpointMismatch):
        Counter(path, epochs=4, fingerprint="b").run_epochs()


class MakesMarker:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def unreadable(kind: str, path, marker) -> tuple[bytes, str]:
    """The bytes of an unreadable checkpoint and the reason the loop gives."""
    if kind == "empty":
        return b"", "empty file"
    if kind == "truncated":  # a checkpoint cut short
        save_checkpoint({"epoch": 1, "fingerprint": "a", "state": {"weights": torch.randn(500)}, "history": []}, path)
        data = path.read_bytes()
        return data[: len(data) // 2], "cut short"
    buffer = io.BytesIO()
    torch.save({"epoch": 1, "fingerprint": "a", "state": MakesMarker(marker)}, buffer)
    assert pickle.dumps(MakesMarker(marker))  # the payload pickles (its __reduce__ would create the marker)
    return buffer.getvalue(), "cut short, or not a safetensors file"


@pytest.mark.parametrize("kind", ["empty", "truncated", "tampered"])
def test_an_unreadable_checkpoint_is_set_aside_and_the_run_starts_over(tmp_path, capsys, kind):
    path = tmp_path / "checkpoint.safetensors"
    marker = tmp_path / "marker"
    data, reason = unreadable(kind, path, marker)
    path.write_bytes(data)
    loop = Counter(path)
    assert loop.run_epochs() is None and loop.ran == [0, 1, 2]
    err = capsys.readouterr().err
    assert err.splitlines() == [f"count: checkpoint {path} cannot be read ({reason}); moved it to "
                                "checkpoint.safetensors.corrupt-1 and starting over"]
    assert (tmp_path / "checkpoint.safetensors.corrupt-1").read_bytes() == data
    assert load_checkpoint(path)["epoch"] == 2  # the new run's checkpoint
    assert not marker.exists()


def test_a_second_unreadable_checkpoint_keeps_the_first(tmp_path, capsys):
    path = tmp_path / "checkpoint.safetensors"
    for n in (1, 2):
        path.write_bytes(b"")
        Counter(path).run_epochs()
        assert f"moved it to checkpoint.safetensors.corrupt-{n} and" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.safetensors", "checkpoint.safetensors.corrupt-1",
                                                          "checkpoint.safetensors.corrupt-2"]


def test_a_stage_sets_an_unreadable_checkpoint_aside_before_its_run(tmp_path, capsys):
    path = tmp_path / "checkpoint.safetensors"
    assert not discard_unreadable(path, "search")  # none there
    Counter(path, epochs=1).run_epochs()
    assert not discard_unreadable(path, "search") and load_checkpoint(path)["epoch"] == 0  # readable: kept
    path.write_bytes(path.read_bytes()[:-1])
    assert discard_unreadable(path, "search")
    assert capsys.readouterr().err.splitlines() == [f"search: checkpoint {path} cannot be read (cut short); moved it "
                                                    "to checkpoint.safetensors.corrupt-1 and starting over"]
    assert not path.exists() and (tmp_path / "checkpoint.safetensors.corrupt-1").exists()


@pytest.mark.parametrize("state, what", [
    ({"epoch": 0, "fingerprint": "a"}, "no entry 'state', 'history'"),
    ([1, 2], "holds a list, not a dict"),
    ({"epoch": 0, "fingerprint": "a", "state": {}, "history": []}, "no entry 'weights'"),
    ({"epoch": 0, "fingerprint": "a", "state": {"weights": torch.ones(2)}, "history": [{"epoch": 0}]},
     "Step.__init__() missing 2 required positional arguments: 'epochs' and 'metrics'"),
])
def test_a_checkpoint_without_the_expected_entries_is_one_line(tmp_path, state, what):
    path = tmp_path / "checkpoint.safetensors"
    save_checkpoint(state, path)
    with pytest.raises(StateFileError) as err:
        Counter(path).run_epochs()
    assert str(err.value) == f"{path} does not hold the expected state ({what}); delete it to start over"
    assert path.exists()  # readable: the user decides
