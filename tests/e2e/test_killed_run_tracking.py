"""A stage killed with SIGKILL leaves its MLflow run RUNNING; resumed, the stage goes on in that run (every epoch's
metric once per step, FINISHED, no RUNNING run left). A checkpoint made on other data of the same shapes is not
resumed, and the run it was logged to is closed as KILLED."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ednas_core.data.prepared import load_prepared, read_manifest, save_prepared
from pipeline import TINY, mlflow_runs, stage
from stages.evaluate import CHECKPOINT as EVALUATE_CHECKPOINT
from stages.search import CHECKPOINT as SEARCH_CHECKPOINT
from tools.workspace import dvc_env, make_workspace

pytestmark = pytest.mark.slow

EPOCHS = 4
PREPARED = Path("data/prepared")


OVERRIDES = {**TINY, "digits.search.epochs": EPOCHS, "digits.evaluate.epochs": EPOCHS,
             "digits.evaluate.genotype": "paper-cifar10"}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """data/prepared made once by the prepare-data stage; each test copies it into a workspace of its own."""
    ws = make_workspace(tmp_path_factory.mktemp("prepared") / "ws", OVERRIDES)
    done = stage(ws, "prepare_data")
    assert done.returncode == 0, done.stderr
    return ws / PREPARED


@pytest.fixture
def ws(tmp_path, prepared) -> Path:
    ws = make_workspace(tmp_path / "ws", OVERRIDES)
    shutil.copytree(prepared, ws / PREPARED)
    return ws


def kill_after_first_checkpoint(ws: Path, name: str, checkpoint: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-m", f"stages.{name}"], cwd=ws, env=dvc_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not (ws / checkpoint).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (ws / checkpoint).exists(), f"{name} finished before it could be killed"


def stage_runs(ws: Path, name: str) -> list:
    return [r for r in mlflow_runs(ws) if r.data.tags.get("ednas.stage") == name]


def epoch_metrics(ws: Path, csv_name: str) -> list[str]:
    with open(ws / "metrics" / csv_name) as f:
        return [key for key in next(csv.reader(f)) if key != "epoch"]


def assert_every_epoch_once(ws: Path, run, csv_name: str) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    steps = {key: sorted(m.step for m in client.get_metric_history(run.info.run_id, key)) for key in run.data.metrics}
    for key in epoch_metrics(ws, csv_name):
        if key in steps:  # a value not measured (NaN) is not logged
            assert steps[key] == list(range(1, EPOCHS + 1)), (key, steps[key])
    assert all(len(s) == len(set(s)) for s in steps.values()), steps
    assert "epoch_time_s" in steps


@pytest.mark.parametrize("name, checkpoint, csv_name", [
    ("search", SEARCH_CHECKPOINT, "search_epochs.csv"),
    ("evaluate", EVALUATE_CHECKPOINT, "evaluate_epochs.csv"),
], ids=["search", "evaluate"])
def test_killed_stage_goes_on_in_its_mlflow_run(ws, name, checkpoint, csv_name):
    kill_after_first_checkpoint(ws, name, checkpoint)
    (killed,) = stage_runs(ws, name)
    assert killed.info.status == "RUNNING"  # nothing could close it
    resumed = stage(ws, name)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch" in resumed.stderr
    assert not (ws / checkpoint).exists() and not (ws / checkpoint).with_name("mlflow_run.json").exists()
    assert [r.info.status for r in mlflow_runs(ws) if r.info.status == "RUNNING"] == []
    (run,) = stage_runs(ws, name)
    assert run.info.run_id == killed.info.run_id and run.info.status == "FINISHED"
    assert_every_epoch_once(ws, run, csv_name)


@pytest.mark.parametrize("name, checkpoint, csv_name, starts_over", [
    ("search", SEARCH_CHECKPOINT, "search_epochs.csv", "starting a new search"),
    ("evaluate", EVALUATE_CHECKPOINT, "evaluate_epochs.csv", "starting over"),
], ids=["search", "evaluate"])
def test_checkpoint_of_other_data_with_the_same_shapes_is_not_resumed(ws, name, checkpoint, csv_name, starts_over):
    kill_after_first_checkpoint(ws, name, checkpoint)
    before = read_manifest(ws / PREPARED)
    data = load_prepared(ws / PREPARED, "digits")
    data.train_images = 255 - data.train_images  # other pixels, same shapes and sizes
    save_prepared(data, ws / PREPARED, "digits", before.sources)
    after = read_manifest(ws / PREPARED)
    assert after.dataset_md5 != before.dataset_md5 and (after.train, after.test, after.shape) == \
        (before.train, before.test, before.shape)
    (killed,) = stage_runs(ws, name)
    done = stage(ws, name)
    assert done.returncode == 0, done.stderr
    assert starts_over in done.stderr and "resuming" not in done.stderr
    runs = {r.info.run_id: r for r in stage_runs(ws, name)}
    assert runs.pop(killed.info.run_id).info.status == "KILLED"
    (new,) = runs.values()
    assert new.info.status == "FINISHED"
    assert_every_epoch_once(ws, new, csv_name)
