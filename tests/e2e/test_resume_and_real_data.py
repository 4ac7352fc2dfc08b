"""A search stage killed with SIGKILL resumes from its checkpoint and ends as an uninterrupted one would; the
prepare-data stage reads the real CIFAR-10 files when EDNAS_DATA_ROOT is set."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ednas_core.checkpoint import load_checkpoint
from pipeline import NAO_SMALL, TINY, stage
from tools.workspace import dvc_env, make_workspace

pytestmark = pytest.mark.slow
# search outputs that a rerun writes byte for byte (policy_history.npz holds wall-clock timings too)
BYTE_STABLE = ("data/search/supernet.safetensors", "data/search/final_policy.json")


def workspace_with_prepared_data(tmp_path: Path, workspace: Path, params: dict) -> Path:
    """A workspace of `params` holding the session workspace's prepared digits (prepare-data need not run)."""
    ws = make_workspace(tmp_path / "ws", params)
    for rel in ("data/prepared/dataset.pt", "data/prepared/manifest.json"):
        (ws / rel).parent.mkdir(parents=True, exist_ok=True)
        (ws / rel).write_bytes((workspace / rel).read_bytes())
    return ws


def kill_search(ws: Path, after_epoch: int = 0) -> int:
    """Runs the search stage and SIGKILLs it once its checkpoint holds epoch `after_epoch` (0-based) or later;
    returns the checkpoint's epoch."""
    checkpoint = ws / "data/search/checkpoint.safetensors"
    proc = subprocess.Popen([sys.executable, "-m", "stages.search"], cwd=ws, env=dvc_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while proc.poll() is None and time.monotonic() < deadline:
        if checkpoint.exists() and load_checkpoint(checkpoint)["epoch"] >= after_epoch:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "the search finished before it could be killed"
    return load_checkpoint(checkpoint)["epoch"]


def test_killed_search_stage_resumes_to_the_uninterrupted_result(tmp_path, workspace):
    ws = workspace_with_prepared_data(tmp_path, workspace, {**TINY, "digits.search.epochs": 4})
    checkpoint = ws / "data/search/checkpoint.safetensors"
    killed_at = kill_search(ws)
    assert killed_at < 3
    resumed = stage(ws, "search")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming after epoch {killed_at + 1} of 4" in resumed.stderr
    assert not checkpoint.exists()
    resumed_files = {rel: (ws / rel).read_bytes() for rel in BYTE_STABLE}
    resumed_history = dict(np.load(ws / "data/search/policy_history.npz"))
    resumed_metrics = {**json.loads((ws / "metrics/search.json").read_text()),
                       **json.loads((ws / "metrics/info/search.json").read_text())}

    (ws / "data/search/supernet.safetensors").unlink()
    checkpoint.write_bytes(b"")  # what a killed copy could leave: set aside, and the search starts over
    fresh = stage(ws, "search")
    assert fresh.returncode == 0 and "resuming" not in fresh.stderr
    assert [line for line in fresh.stderr.splitlines() if "checkpoint" in line] == [
        "search: checkpoint data/search/checkpoint.safetensors cannot be read (empty file); moved it to "
        "checkpoint.safetensors.corrupt-1 and starting over"]
    assert (ws / "data/search/checkpoint.safetensors.corrupt-1").read_bytes() == b""
    for rel in BYTE_STABLE:  # the same bytes, not only equal tensors
        assert (ws / rel).read_bytes() == resumed_files[rel], rel
    fresh_history = dict(np.load(ws / "data/search/policy_history.npz"))
    assert fresh_history.keys() == resumed_history.keys()
    for key, array in fresh_history.items():  # all but wall-clock timings (which no rerun repeats)
        if not key.endswith("_s"):
            assert np.array_equal(array, resumed_history[key], equal_nan=True), key
    fresh_metrics = {**json.loads((ws / "metrics/search.json").read_text()),
                     **json.loads((ws / "metrics/info/search.json").read_text())}
    for key in ("child_loss", "child_acc", "reward", "baseline", "entropy"):
        assert fresh_metrics[key] == resumed_metrics[key], key


def test_killed_nao_search_stage_resumes_to_the_uninterrupted_result(tmp_path, workspace):
    """The strategy with the most state (encoder-predictor-decoder, its Adam moments, the pool, the scored pool,
    the round's cursor): SIGKILLed one epoch after a round, its search stage resumes to the uninterrupted bytes."""
    params = {**TINY, **NAO_SMALL, "digits.search.epochs": 6, "digits.search.strategy": "nao",
              "digits.search.nao.update_every": 2}
    ws = workspace_with_prepared_data(tmp_path, workspace, params)
    uninterrupted = stage(ws, "search")
    assert uninterrupted.returncode == 0, uninterrupted.stderr
    expected = {rel: (ws / rel).read_bytes() for rel in BYTE_STABLE}
    assert load_checkpoint(ws / BYTE_STABLE[0])["strategy"] == "nao"  # derive names it if the params differ
    metrics, epochs = json.loads((ws / "metrics/search.json").read_text()), untimed_epochs(ws)
    assert [bool(row["pairwise_accuracy"]) for row in epochs] == [False, True] * 3  # the rounds' epochs
    assert kill_search(ws, after_epoch=2) == 2  # killed after the 3rd epoch, one after a round
    resumed = stage(ws, "search")
    assert resumed.returncode == 0, resumed.stderr
    assert "search: resuming after epoch 3 of 6" in resumed.stderr
    for rel in BYTE_STABLE:
        assert (ws / rel).read_bytes() == expected[rel], rel
    assert json.loads((ws / "metrics/search.json").read_text()) == metrics
    assert untimed_epochs(ws) == epochs


def untimed_epochs(ws: Path) -> list[dict[str, str]]:
    """metrics/search_epochs.csv without its wall-clock columns (*_s, *_per_s), which no rerun repeats."""
    with open(ws / "metrics/search_epochs.csv", newline="") as f:
        return [{k: v for k, v in row.items() if not k.endswith("_s")} for row in csv.DictReader(f)]


def prepare_real(tmp_path: Path, task: str) -> tuple[Path, dict]:
    """Runs prepare-data on the real files under EDNAS_DATA_ROOT; returns the workspace and its manifest."""
    ws = make_workspace(tmp_path / "ws", {"task": task, "data.root": os.environ["EDNAS_DATA_ROOT"]})
    done = stage(ws, "prepare_data")
    assert done.returncode == 0, done.stderr
    return ws, json.loads((ws / "data/prepared/manifest.json").read_text())


@pytest.mark.skipif(not os.environ.get("EDNAS_DATA_ROOT"), reason="EDNAS_DATA_ROOT (real datasets) is not set")
def test_prepare_data_reads_real_cifar10(tmp_path):
    ws, manifest = prepare_real(tmp_path, "cifar10")
    assert manifest["task"] == "cifar10" and manifest["train"] == 50_000 and manifest["test"] == 10_000
    assert manifest["shape"] == [3, 32, 32] and len(manifest["sources"]) == 6
    assert json.loads((ws / "metrics/prepare.json").read_text())["train_images"] == 50_000


@pytest.mark.skipif(not os.environ.get("EDNAS_DATA_ROOT"), reason="EDNAS_DATA_ROOT (real datasets) is not set")
def test_prepare_data_reads_real_ptb(tmp_path):
    _, manifest = prepare_real(tmp_path, "ptb")
    assert manifest["kind"] == "text" and manifest["vocab_size"] == 10_000
    assert manifest["train"] == 929_589 and manifest["test"] == 82_430 and len(manifest["sources"]) == 3
