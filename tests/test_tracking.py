"""ednas_core.tracking: tracking URI, pipeline id, StageRun on a real SQLite MLflow store, retries, search logger."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from ednas_core import tracking
from ednas_core.search import EpochReport
from ednas_core.tracking import MLflowSearchLogger, StageRun, pipeline_id, tracking_uri

PARAMS_TEXT = "task: cifar10\nsearch:\n  lr: 0.05\n"


# --- tracking URI and pipeline id (no database) -------------------------------------------------------------

def test_tracking_uri_env_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow.example:5000")
    assert tracking_uri() == "http://mlflow.example:5000"
    assert tracking_uri(tmp_path / "other") == "http://mlflow.example:5000"


def test_tracking_uri_sqlite_at_dvc_root(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert tracking_uri() == f"sqlite:///{tmp_path.resolve()}/mlflow.db"


def test_tracking_uri_is_absolute_for_relative_root_and_cwd(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", "sub")
    assert tracking_uri() == f"sqlite:///{(tmp_path / 'sub').resolve()}/mlflow.db"
    monkeypatch.delenv("DVC_ROOT")
    uri = tracking_uri()
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlflow.db"
    assert uri.startswith("sqlite:////")  # sqlite:/// + an absolute path


def test_pipeline_id(monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-a")
    first = pipeline_id(PARAMS_TEXT, "abc123")
    assert first == pipeline_id(PARAMS_TEXT, "abc123")
    assert len(first) == 12 and all(c in "0123456789abcdef" for c in first)
    assert pipeline_id(PARAMS_TEXT + "# changed\n", "abc123") != first
    assert pipeline_id(PARAMS_TEXT, "def456") != first
    monkeypatch.setenv("DVC_EXP_NAME", "exp-b")
    assert pipeline_id(PARAMS_TEXT, "abc123") != first
    monkeypatch.delenv("DVC_EXP_NAME")
    assert pipeline_id(PARAMS_TEXT, "abc123") not in (first, pipeline_id(PARAMS_TEXT, "def456"))


# --- _retry -------------------------------------------------------------------------------------------------

def test_retry_transient_errors_then_success(monkeypatch):
    sleeps = []
    monkeypatch.setattr(tracking.time, "sleep", sleeps.append)
    calls = []

    def flaky(a, b=0):
        calls.append((a, b))
        if len(calls) < 3:
            raise Exception("(sqlite3.OperationalError) database is locked")
        return a + b

    assert tracking._retry(flaky, 2, b=3) == 5
    assert calls == [(2, 3)] * 3
    assert len(sleeps) == 2 and sleeps[1] > sleeps[0] > 0  # backs off


def test_retry_other_error_propagates_at_once(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda s: pytest.fail("slept on a non-transient error"))
    calls = []

    def broken():
        calls.append(1)
        raise KeyError("no such run")

    with pytest.raises(KeyError, match="no such run"):
        tracking._retry(broken)
    assert len(calls) == 1


def test_retry_gives_up_after_deadline(monkeypatch):
    monkeypatch.setattr(tracking, "RETRY_SECONDS", -1.0)
    monkeypatch.setattr(tracking.time, "sleep", lambda s: pytest.fail("slept past the deadline"))
    calls = []

    def locked():
        calls.append(1)
        raise Exception("database is locked")

    with pytest.raises(Exception, match="database is locked"):
        tracking._retry(locked)
    assert len(calls) == 1


# --- StageRun on a real SQLite store (one database for the module: creating it takes seconds) ----------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-root").resolve()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVC_ROOT", str(root))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("DVC_EXP_BASELINE_REV", "0123abcd")
        StageRun("setup", "setup", {}, "")  # creates the schema once
        from mlflow.tracking import MlflowClient

        yield root, MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")


@pytest.fixture
def env(store, monkeypatch):
    root, client = store
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", "0123abcd")
    monkeypatch.delenv("DVC_STAGE", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return root, client


def read_artifact(client, run_id: str, path: str, tmp_path: Path) -> dict:
    local = client.download_artifacts(run_id, path, str(tmp_path))
    return json.loads(Path(local).read_text())


def test_stage_run_finished_with_tags_params_metrics_artifacts(env, monkeypatch, tmp_path):
    root, client = env
    monkeypatch.setenv("DVC_STAGE", "search@dvc")
    monkeypatch.setenv("DVC_EXP_NAME", "bushy-lamb")
    params = {"search.lr": 0.05, "search.nesterov": True, "task": "cifar10"}
    with StageRun("search", "cifar10", params, PARAMS_TEXT) as run:
        assert run.run_id
        run.log_metrics({"loss": 2.0, "acc": 0.5, "bad": float("nan"), "worse": math.inf}, step=1)
        run.log_metrics({"loss": 1.5, "acc": 0.6}, step=2)
        run.log_dict({"a": [1, 2], "b": "x"}, "stuff/data.json")

    experiment = client.get_experiment_by_name("ednas-cifar10")
    assert experiment is not None
    assert experiment.artifact_location == (root / "mlruns").as_uri()
    got = client.get_run(run.run_id)
    assert got.info.experiment_id == experiment.experiment_id
    assert got.info.status == "FINISHED"
    tags = got.data.tags
    assert tags["dvc.stage"] == "search@dvc"
    assert tags["dvc.exp_name"] == "bushy-lamb"
    assert tags["git.rev"] == "0123abcd"
    assert tags["ednas.pipeline_id"] == pipeline_id(PARAMS_TEXT, "0123abcd")
    assert tags["ednas.task"] == "cifar10"
    assert tags["ednas.stage"] == "search"
    assert "error" not in tags
    assert got.data.params == {"search.lr": "0.05", "search.nesterov": "True", "task": "cifar10"}
    loss = client.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in sorted(loss, key=lambda m: m.step)] == [(1, 2.0), (2, 1.5)]
    assert sorted(m.step for m in client.get_metric_history(run.run_id, "acc")) == [1, 2]
    assert client.get_metric_history(run.run_id, "bad") == []
    assert client.get_metric_history(run.run_id, "worse") == []
    assert read_artifact(client, run.run_id, "stuff/data.json", tmp_path) == {"a": [1, 2], "b": "x"}
    assert got.info.artifact_uri.startswith((root / "mlruns").as_uri() + "/")


def test_stage_run_defaults_stage_tag_and_shares_pipeline_id(env):
    root, client = env
    with StageRun("derive", "cifar10", {}, PARAMS_TEXT) as first:
        pass
    with StageRun("evaluate", "cifar10", {}, PARAMS_TEXT) as second:
        pass
    a, b = client.get_run(first.run_id).data.tags, client.get_run(second.run_id).data.tags
    assert (a["dvc.stage"], b["dvc.stage"]) == ("derive", "evaluate")
    assert a["dvc.exp_name"] == ""
    assert a["ednas.pipeline_id"] == b["ednas.pipeline_id"]
    # same experiment reused, not created twice
    assert client.get_run(first.run_id).info.experiment_id == client.get_run(second.run_id).info.experiment_id


def test_stage_run_failed_on_exception(env):
    root, client = env
    with pytest.raises(ValueError, match="search.lr went bad"):
        with StageRun("search", "failing", {}, PARAMS_TEXT) as run:
            raise ValueError("search.lr went bad\nsecond line of detail")
    got = client.get_run(run.run_id)
    assert got.info.status == "FAILED"
    assert got.data.tags["error"] == "ValueError: search.lr went bad"
    assert client.get_experiment_by_name("ednas-failing") is not None


# --- MLflowSearchLogger -------------------------------------------------------------------------------------

def report(epoch: int, epochs: int = 3) -> EpochReport:
    probs = np.array([[0.25, 0.75], [0.5, 0.5]]) + epoch * np.array([[0.1, -0.1], [0.0, 0.0]])
    return EpochReport(epoch=epoch, epochs=epochs,
                       metrics={"child_acc": 0.5 + 0.1 * epoch, "reward": 0.1 * (epoch + 1)},
                       probabilities={"normal": probs, "reduce": np.array([1 / 3, 2 / 3])},
                       counts={"normal": np.array([[epoch, 1], [2, 3]])})


def policy_files(client, run_id: str) -> list[str]:
    return sorted(a.path for a in client.list_artifacts(run_id, "policy"))


def test_search_logger_metrics_and_policy_every(env, tmp_path):
    root, client = env
    with StageRun("search", "logger", {}, PARAMS_TEXT) as run:
        logger = MLflowSearchLogger(run, policy_every=2)
        for epoch in range(3):
            logger.on_epoch_end(report(epoch))
    history = sorted(client.get_metric_history(run.run_id, "child_acc"), key=lambda m: m.step)
    assert [m.step for m in history] == [1, 2, 3]
    assert [m.value for m in history] == pytest.approx([0.5, 0.6, 0.7])
    assert policy_files(client, run.run_id) == ["policy/epoch_0002.json", "policy/epoch_0003.json"]
    second = read_artifact(client, run.run_id, "policy/epoch_0002.json", tmp_path)
    assert second == {"epoch": 2, "normal": [[0.35, 0.65], [0.5, 0.5]], "reduce": [0.333333, 0.666667],
                      "normal_counts": [[1, 1], [2, 3]]}


def test_search_logger_every_epoch(env):
    root, client = env
    with StageRun("search", "logger", {}, PARAMS_TEXT) as run:
        logger = MLflowSearchLogger(run)
        for epoch in range(2):
            logger.on_epoch_end(report(epoch, epochs=2))
    assert policy_files(client, run.run_id) == ["policy/epoch_0001.json", "policy/epoch_0002.json"]


def test_search_logger_on_resume_logs_history(env):
    root, client = env
    with StageRun("search", "logger", {}, PARAMS_TEXT) as run:
        logger = MLflowSearchLogger(run, policy_every=5)
        logger.on_resume([report(0, epochs=4), report(1, epochs=4)])
        logger.on_epoch_end(report(2, epochs=4))
    steps = sorted(m.step for m in client.get_metric_history(run.run_id, "reward"))
    assert steps == [1, 2, 3]
    assert policy_files(client, run.run_id) == []  # neither a multiple of 5 nor the last epoch
