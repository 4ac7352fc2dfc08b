"""The imagenet task through the real pipeline on a generated ImageFolder of small JPEGs (6 classes): `dvc repro`
indexes the folder, searches on image files, derives, trains the cell and reports top-1 / top-5 error beside
the paper's, and again in a `dvc exp run --temp` copy (reading the repository's images); the same with two
processes (runtime.gpus: 2, gloo on the CPU); a missing ImageNet folder is one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import write_pattern_imagefolder
from pipeline import dvc, mlflow_runs, stage
from tools.workspace import make_workspace

pytestmark = [pytest.mark.slow,
              pytest.mark.filterwarnings("ignore:The image decoding and encoding capabilities:DeprecationWarning")]

TINY_IMAGENET = {
    "task": "imagenet", "runtime.device": "cpu",
    "imagenet.search.train_images": 40, "imagenet.search.policy_images": 16, "imagenet.search.image_size": 32,
    "imagenet.search.workers": 1, "imagenet.search.epochs": 2, "imagenet.search.batch_size": 8,
    "imagenet.search.policy_batch_size": 8, "imagenet.search.layers": 3, "imagenet.search.init_channels": 4,
    "imagenet.derive.samples": 10, "imagenet.derive.batch_size": 8,
    "imagenet.evaluate.epochs": 2, "imagenet.evaluate.batch_size": 16, "imagenet.evaluate.layers": 3,
    "imagenet.evaluate.init_channels": 8, "imagenet.evaluate.image_size": 32, "imagenet.evaluate.resize": 36,
    "imagenet.evaluate.workers": 1, "imagenet.evaluate.warmup_epochs": 1,
}


def _workspace(tmp_path: Path, **overrides) -> Path:
    ws = make_workspace(tmp_path / "repo", {**TINY_IMAGENET, **overrides})
    write_pattern_imagefolder(ws / "data/raw/imagenet")
    return ws


def test_imagenet_pipeline_on_a_generated_image_folder(tmp_path):
    ws = _workspace(tmp_path)
    dvc(ws, "repro")
    assert json.loads((ws / "metrics/prepare.json").read_text()) == {"train_images": 60, "val_images": 18,
                                                                    "classes": 6}
    assert (ws / "data/prepared/imagenet_index.json").is_file() and not (ws / "data/prepared/dataset.pt").exists()
    epochs = (ws / "metrics/search_epochs.csv").read_text().splitlines()
    assert len(epochs) == 3 and "skipped_images" in epochs[0]
    genotype = json.loads((ws / "data/derive/genotype.json").read_text())
    assert genotype["space"] == "cnn" and len(genotype["normal"]) == 8
    evaluate = json.loads((ws / "metrics/evaluate.json").read_text())
    assert set(evaluate) == {"test_error", "top5_error", "params"}
    assert 0.0 <= evaluate["top5_error"] <= evaluate["test_error"] <= 100.0 and evaluate["params"] > 0
    report = (ws / "metrics/report.md").read_text()
    assert "# EDNAS report: imagenet" in report and "26.9 / 8.9 top-1 / top-5 error" in report
    assert f"top-5 error {evaluate['top5_error']:.2f}%" in report and "50,000 validation images" in report
    runs = {r.data.tags["ednas.stage"]: r for r in mlflow_runs(ws, task="imagenet")}
    assert set(runs) == {"prepare-data", "search", "derive", "evaluate", "report"}
    assert runs["evaluate"].data.metrics["top5_error"] == pytest.approx(evaluate["top5_error"])
    assert runs["evaluate"].data.metrics["test_top5_acc"] >= runs["evaluate"].data.metrics["test_acc"]
    assert "up to date" in dvc(ws, "status").stdout
    # an ablation of the evaluation reruns evaluate (and report) only: the index and the search stand
    done = dvc(ws, "exp", "run", "-S", "imagenet.evaluate.init_channels=12")
    assert "Running stage 'evaluate'" in done.stdout
    assert "Running stage 'prepare-data'" not in done.stdout and "Running stage 'search'" not in done.stdout
    # a `dvc exp run --temp` copy lacks the git-ignored data/raw: it indexes and reads the repository's images
    done = dvc(ws, "exp", "run", "--temp", "-n", "in-a-copy", "-S", "imagenet.search.epochs=1")
    assert "Running stage 'prepare-data'" in done.stdout and "Running stage 'evaluate'" in done.stdout
    copy = [r for r in mlflow_runs(ws, task="imagenet") if r.data.tags.get("dvc.exp_name") == "in-a-copy"]
    assert {r.data.tags["ednas.stage"]: r.info.status for r in copy} == {
        s: "FINISHED" for s in ("prepare-data", "search", "derive", "evaluate", "report")}
    assert not list((ws / ".dvc/tmp").glob("exps/**/data/raw"))  # nothing copied or downloaded into the copy


def test_two_processes_search_and_train_imagenet(tmp_path):
    ws = _workspace(tmp_path, **{"runtime.gpus": 2})
    done = dvc(ws, "repro")
    out = done.stdout + done.stderr
    assert "2 processes x batch 16 = global batch 32 (learning rate 0.1 x 2 = 0.2, the linear scaling rule)" in out
    runs = {r.data.tags["ednas.stage"]: r for r in mlflow_runs(ws, task="imagenet")}
    assert len(runs) == 5  # one run per stage, not per rank
    for name in ("search", "evaluate"):
        assert runs[name].data.tags["ednas.world_size"] == "2" and runs[name].info.status == "FINISHED"
    assert runs["evaluate"].data.metrics["lr"] == pytest.approx(0.2 * 0.97)  # the last epoch's, scaled
    evaluate = json.loads((ws / "metrics/evaluate.json").read_text())
    assert 0.0 <= evaluate["top5_error"] <= evaluate["test_error"] <= 100.0


def test_missing_imagenet_is_one_line_saying_what_to_place_where(tmp_path):
    ws = make_workspace(tmp_path / "repo", TINY_IMAGENET)
    done = stage(ws, "prepare_data")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "image-net.org" in lines[0] and "data/raw/imagenet/train/<wnid>" in lines[0], done.stderr
    assert not (ws / "data/prepared/manifest.json").exists()
