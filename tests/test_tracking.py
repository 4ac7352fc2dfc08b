"""ednas_core.tracking: tracking URI, pipeline id, StageRun on a real SQLite MLflow store, retries, search logger,
the experiments' kind tag, labelled policy JSON, a moved workspace's artifact locations."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from ednas_core import tracking
from ednas_core.search import EpochReport
from ednas_core.spaces import CNN_SPACE, RNN_SPACE
from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.tracking import (EXPERIMENT_KIND, EXPERIMENT_KIND_TAG, MLflowSearchLogger, StageRun, pipeline_id,
                                 policy_json, relocate_artifacts, tracking_uri, ui_url)

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
    assert experiment.tags[EXPERIMENT_KIND_TAG] == EXPERIMENT_KIND == "custom_model_development"
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


# --- the pipeline's parent run -------------------------------------------------------------------------------

def parents(client, task: str) -> list:
    experiment = client.get_experiment_by_name(f"ednas-{task}").experiment_id
    return client.search_runs([experiment], filter_string="tags.`ednas.stage` = 'pipeline'")


def test_stages_of_one_pipeline_nest_under_one_parent_named_after_the_experiment(env, monkeypatch):
    root, client = env
    monkeypatch.setenv("DVC_EXP_NAME", "tidy-ox")
    params = {"search.lr": 0.05, "runtime.seed": 1}
    with StageRun("search", "nested", params, PARAMS_TEXT, extra_tags={"ednas.strategy": "enas"}) as search:
        search.log_pipeline_metrics({"search_child_acc": 0.75, "search_hours": math.nan})
        assert client.get_run(search.parent_id).info.status == "RUNNING"  # while a stage runs
    with StageRun("evaluate", "nested", params, PARAMS_TEXT) as evaluate:
        evaluate.log_pipeline_metrics({"test_error": 3.5, "params_m": 1.25})
    [parent] = parents(client, "nested")
    assert search.parent_id == evaluate.parent_id == parent.info.run_id
    for run_id in (search.run_id, evaluate.run_id):
        assert client.get_run(run_id).data.tags["mlflow.parentRunId"] == parent.info.run_id
    tags = parent.data.tags
    assert tags["mlflow.runName"] == "tidy-ox" and tags["dvc.exp_name"] == "tidy-ox"
    assert tags["ednas.pipeline_id"] == client.get_run(search.run_id).data.tags["ednas.pipeline_id"]
    assert tags["ednas.strategy"] == "enas" and tags["ednas.task"] == "nested"
    assert parent.data.params == {"search.lr": "0.05", "runtime.seed": "1"}
    assert parent.data.metrics == {"search_child_acc": 0.75, "test_error": 3.5, "params_m": 1.25}
    assert parent.info.status == "FINISHED"

    monkeypatch.setenv("DVC_EXP_NAME", "other-exp")  # another experiment: another parent
    with StageRun("search", "nested", params, PARAMS_TEXT) as other:
        pass
    assert other.parent_id != parent.info.run_id and len(parents(client, "nested")) == 2


def test_parent_fails_with_the_stage_and_recovers_when_it_reruns(env, monkeypatch):
    root, client = env
    monkeypatch.setenv("DVC_EXP_NAME", "fix-me")
    with pytest.raises(ValueError):
        with StageRun("evaluate", "recovers", {}, PARAMS_TEXT) as failed:
            raise ValueError("evaluate.epochs went bad")
    parent = client.get_run(failed.parent_id)
    assert parent.info.status == "FAILED"
    assert parent.data.tags["error"] == "evaluate: ValueError: evaluate.epochs went bad"
    with StageRun("evaluate", "recovers", {}, PARAMS_TEXT) as rerun:
        pass
    assert rerun.parent_id == failed.parent_id
    parent = client.get_run(rerun.parent_id)
    assert parent.info.status == "FINISHED" and "error" not in parent.data.tags


def test_parent_lists_the_params_changed_from_the_baseline_commit(env, monkeypatch, tmp_path):
    root, client = env
    repo = tmp_path / "repo"
    repo.mkdir()
    baseline = "task: cifar10\nsearch:\n  lr: 0.05\n  epochs: 300\nruntime:\n  seed: 2\n"
    (repo / "params.yaml").write_text(baseline)
    for args in (["init", "-q"], ["add", "params.yaml"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit",
                                                           "-qm", "baseline"]):
        subprocess.run(["git", *args], cwd=repo, check=True)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    changed = baseline.replace("0.05", "0.1").replace("seed: 2", "seed: 7\n  amp: false")
    assert tracking.changed_params(changed, rev, repo) == {"runtime.amp": False, "runtime.seed": 7,
                                                           "search.lr": 0.1}
    assert tracking.changed_params(baseline, rev, repo) == {}
    assert tracking.changed_params(baseline, "f" * 40, repo) is None  # no such commit

    monkeypatch.chdir(repo)
    monkeypatch.setenv("DVC_EXP_BASELINE_REV", rev)
    monkeypatch.setenv("DVC_EXP_NAME", "lr-up")
    with StageRun("search", "changed", {}, changed) as run:
        pass
    parent = client.get_run(run.parent_id)
    assert parent.data.tags["ednas.changed_params"] == "runtime.amp=False, runtime.seed=7, search.lr=0.1"
    assert "runtime.seed=7" in parent.data.tags["mlflow.note.content"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_tracking_server_that_does_not_answer_stops_the_stage_at_once(env, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    tracking.check_server("sqlite:///nowhere/mlflow.db")  # not a server: not checked
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    started = time.monotonic()
    with pytest.raises(tracking.TrackingUnavailable, match=f"MLFLOW_TRACKING_URI={uri}: no MLflow server answers "
                                                           r"\(.*refused.*\); start it"):
        StageRun("search", "cifar10", {}, PARAMS_TEXT)
    assert time.monotonic() - started < tracking.HEALTH_TIMEOUT_S + 2  # not MLflow's minutes of retries


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


def test_metric_histories_per_run_and_key_latest_value_of_a_step(env):
    """What the seed study's curves read: each run's history of each key, a step logged twice (a resumed search
    relogs the epochs a continued run lacks) with its latest value, a key never logged absent."""
    root, client = env
    with StageRun("search", "histories", {}, PARAMS_TEXT) as run:
        run.log_metrics({"answer_test_acc": 90.0}, step=1)
        run.log_metrics({"answer_test_acc": 91.0}, step=2)
        run.log_metrics({"answer_test_acc": 92.5}, step=2)
    with StageRun("search", "histories", {}, PARAMS_TEXT) as other:
        other.log_metrics({"answer_test_acc": 80.0}, step=1)
    got = tracking.metric_histories([run.run_id, other.run_id, "", run.run_id], ["answer_test_acc", "best_test_acc"],
                                    f"sqlite:///{root}/mlflow.db")
    assert got == {run.run_id: {"answer_test_acc": [(1, 90.0), (2, 92.5)]},
                   other.run_id: {"answer_test_acc": [(1, 80.0)]}}


# --- the experiment kind (MLflow's UI: model training, not GenAI) ---------------------------------------------

def test_an_existing_experiment_without_the_kind_tag_gets_it(env):
    root, client = env
    untagged = client.create_experiment("ednas-untagged", artifact_location=(root / "mlruns").as_uri())
    chosen = client.create_experiment("ednas-chosen", artifact_location=(root / "mlruns").as_uri(),
                                      tags={EXPERIMENT_KIND_TAG: "finetuning"})
    assert EXPERIMENT_KIND_TAG not in client.get_experiment(untagged).tags
    with StageRun("derive", "untagged", {}, PARAMS_TEXT) as run:
        assert run.experiment_id == untagged
    with StageRun("derive", "chosen", {}, PARAMS_TEXT):
        pass
    assert client.get_experiment(untagged).tags[EXPERIMENT_KIND_TAG] == "custom_model_development"
    assert client.get_experiment(chosen).tags[EXPERIMENT_KIND_TAG] == "finetuning"  # someone's choice is kept


def test_ui_url_opens_the_model_training_view():
    assert ui_url("3") == "http://127.0.0.1:5000/#/experiments/3?workflowType=machine_learning"
    assert ui_url("3", "http://host:8080/") == "http://host:8080/#/experiments/3?workflowType=machine_learning"


# --- policy JSON: labelled, no padding, rounded --------------------------------------------------------------

def decimals(value: float) -> int:
    text = repr(value)
    return len(text.split(".")[1]) if "." in text and "e" not in text else 0


def all_values(table: dict) -> list:
    return [v for row in table.values() for v in row.values()]


def test_policy_json_labels_edges_and_nodes_without_padding_rounded():
    probs = PolicyVectors(CNN_SPACE, init_std=1.0, generator=torch.Generator().manual_seed(3)).probabilities()
    assert probs["normal_node"].dtype == np.float32 and probs["normal_node"].shape == (4, 10)  # padded to 10
    policy = json.loads(json.dumps(policy_json(probs)))
    assert set(policy) == {"normal_node", "normal_edge", "reduce_node", "reduce_edge"}
    nodes = policy["normal_node"]
    assert list(nodes) == ["node 2", "node 3", "node 4", "node 5"]
    assert nodes["node 2"] == {"(0,1)": 1.0}  # one combination, not ten
    assert list(nodes["node 3"]) == ["(0,1)", "(0,2)", "(1,2)"]
    assert [len(row) for row in nodes.values()] == [1, 3, 6, 10]
    assert nodes["node 4"]["(1,3)"] == round(float(probs["normal_node"][2, 4]), 6)
    edges = policy["reduce_edge"]
    assert len(edges) == 14 and list(edges)[:3] == ["0->2", "1->2", "0->3"] and list(edges)[-1] == "4->5"
    assert list(edges["0->2"]) == list(CNN_SPACE.cell.ops)
    assert edges["2->4"]["sep_conv_3x3"] == round(float(probs["reduce_edge"][7, 3]), 6)  # edge_id(4, 2) == 7
    values = all_values(nodes) + all_values(edges)
    assert max(decimals(v) for v in values) <= 6  # no float32 noise (0.3499999940395355)
    for row in list(nodes.values()) + list(edges.values()):
        assert sum(row.values()) == pytest.approx(1.0, abs=1e-5)


def test_policy_json_of_the_recurrent_space_and_of_unknown_arrays():
    probs = PolicyVectors(RNN_SPACE, init_std=1.0, generator=torch.Generator().manual_seed(3)).probabilities()
    policy = policy_json(probs)
    assert list(policy["recurrent_node"]["node 3"]) == ["0", "1", "2"] and len(policy["recurrent_node"]) == 8
    assert list(policy["recurrent_edge"]["2->3"]) == ["tanh", "relu", "sigmoid", "identity"]
    odd = policy_json({"normal": np.array([[0.1, 0.2]], dtype=np.float32)})  # no search space has these
    assert odd == {"normal": [[0.1, 0.2]]}


def test_search_logger_writes_labelled_policy_and_counts(env, tmp_path):
    root, client = env
    probs = PolicyVectors(CNN_SPACE, init_std=1.0, generator=torch.Generator().manual_seed(0)).probabilities()
    counts = {t: np.arange(14 * 7).reshape(14, 7) for t in CNN_SPACE.cell_types}
    with StageRun("search", "logger", {}, PARAMS_TEXT) as run:
        MLflowSearchLogger(run).on_epoch_end(EpochReport(0, 1, {"reward": 0.5}, probs, counts))
    policy = read_artifact(client, run.run_id, "policy/epoch_0001.json", tmp_path)
    assert set(policy) == {"epoch", "normal_node", "normal_edge", "reduce_node", "reduce_edge", "normal_counts",
                           "reduce_counts"}
    assert policy["normal_node"]["node 2"] == {"(0,1)": 1.0}
    assert policy["normal_counts"]["1->2"] == dict(zip(CNN_SPACE.cell.ops, range(7, 14)))
    assert max(decimals(v) for v in all_values(policy["normal_edge"])) <= 6


# --- a moved or copied workspace: MLflow's artifact locations are absolute ---------------------------------

@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A workspace (its own mlflow.db and mlruns/) with one run and one artifact, made once; tests copy it."""
    root = tmp_path_factory.mktemp("workspace").resolve()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DVC_ROOT", str(root))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setenv("DVC_EXP_BASELINE_REV", "0123abcd")
        with StageRun("search", "moved", {"lr": 0.1}, PARAMS_TEXT) as run:
            run.log_dict({"epoch": 1}, "policy/epoch_0001.json")
    return root, run.run_id


def moved_workspace(workspace, tmp_path: Path) -> Path:
    """The workspace, copied to `first` (its database relocated there), then moved away: its runs point into
    `first`, which is gone."""
    template, _ = workspace
    first, moved = tmp_path / "first", tmp_path / "elsewhere" / "ws"
    shutil.copytree(template, first)
    relocate_artifacts(first)
    moved.parent.mkdir()
    shutil.move(first, moved)
    return moved


def store_client(root: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db")


def test_relocate_artifacts_of_a_moved_workspace(workspace, tmp_path):
    _, run_id = workspace
    root = moved_workspace(workspace, tmp_path)
    client = store_client(root)
    assert client.get_run(run_id).info.artifact_uri.startswith((tmp_path / "first" / "mlruns").as_uri())
    with pytest.raises(Exception, match="Failed to download artifacts"):  # what a moved workspace does
        client.download_artifacts(run_id, "policy/epoch_0001.json", str(tmp_path))
    # the stage's run and its pipeline's parent run
    assert relocate_artifacts(root, dry_run=True) == {str(tmp_path / "first" / "mlruns"): {"experiments": 2,
                                                                                           "runs": 2}}
    assert client.get_run(run_id).info.artifact_uri.startswith((tmp_path / "first").as_uri())  # dry run
    assert relocate_artifacts(root) == {str(tmp_path / "first" / "mlruns"): {"experiments": 2, "runs": 2}}
    assert client.get_run(run_id).info.artifact_uri == f"{(root / 'mlruns').as_uri()}/{run_id}/artifacts"
    experiment = client.get_experiment_by_name("ednas-moved")
    assert experiment.artifact_location == (root / "mlruns").as_uri()
    assert client.get_experiment("0").artifact_location == str(root / "mlruns" / "0")  # MLflow's Default
    assert read_artifact(client, run_id, "policy/epoch_0001.json", tmp_path) == {"epoch": 1}
    assert relocate_artifacts(root) == {}  # nothing left to move


def test_relocate_leaves_other_locations_alone(workspace, tmp_path):
    root = moved_workspace(workspace, tmp_path)
    client = store_client(root)
    s3 = client.create_experiment("on-s3", artifact_location="s3://bucket/mlruns")
    near = client.create_experiment("near", artifact_location=(tmp_path / "first" / "mlruns2").as_uri())
    relocate_artifacts(root)
    assert client.get_experiment(s3).artifact_location == "s3://bucket/mlruns"
    assert client.get_experiment(near).artifact_location == (tmp_path / "first" / "mlruns2").as_uri()
    with pytest.raises(FileNotFoundError, match="no MLflow database here"):
        relocate_artifacts(tmp_path)


def test_a_stage_in_a_moved_workspace_relocates_it_first(workspace, tmp_path, monkeypatch, capsys):
    _, old_run = workspace
    root = moved_workspace(workspace, tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with StageRun("derive", "moved", {}, PARAMS_TEXT) as run:
        run.log_dict({"derived": True}, "derive/result.json")
    assert "now point to " + str(root / "mlruns") in capsys.readouterr().err
    client = store_client(root)
    assert client.get_run(run.run_id).info.artifact_uri.startswith((root / "mlruns").as_uri() + "/")
    assert (root / "mlruns" / run.run_id / "artifacts/derive/result.json").is_file()  # not in the old place
    assert not (tmp_path / "first").exists()
    assert read_artifact(client, old_run, "policy/epoch_0001.json", tmp_path) == {"epoch": 1}


# --- a stage killed outright (SIGKILL) and resumed: its run goes on, or is closed as KILLED -----------------

def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def killed_execution(stage: str, task: str, checkpoint: Path, params: dict | None = None,
                     steps: tuple[int, ...] = (), text: str = PARAMS_TEXT) -> str:
    """A stage execution whose process died with its run open: entered, never exited, its pid gone."""
    run = StageRun(stage, task, params or {"lr": 0.1}, text, checkpoint=checkpoint)
    run.__enter__()
    for step in steps:
        run.log_metrics({"loss": 1.0 / step, "acc": 0.1 * step}, step=step)
    run.client.set_tag(run.run_id, "ednas.pid", str(dead_pid()))
    return run.run_id


def metric_steps(client, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


@pytest.fixture
def checkpoint(env, tmp_path, monkeypatch) -> Path:
    """A stage's checkpoint path in a working directory of the test's own (runs are matched by directory)."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data/search/checkpoint.safetensors"
    path.parent.mkdir(parents=True)
    return path


def test_process_alive():
    assert tracking.process_alive(os.getpid())
    assert not tracking.process_alive(dead_pid())
    zombie = subprocess.Popen(["true"])  # ended, not yet reaped: the pid exists, the process does not
    deadline = time.monotonic() + 10
    while Path(f"/proc/{zombie.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert not tracking.process_alive(zombie.pid)
    zombie.wait()


def test_killed_run_goes_on_without_a_step_twice(env, checkpoint):
    root, client = env
    old = killed_execution("search", "goes-on", checkpoint, steps=(1, 2))
    assert json.loads(checkpoint.with_name("mlflow_run.json").read_text())["run_id"] == old
    checkpoint.write_bytes(b"epochs 1..3")  # the killed execution wrote epoch 3's checkpoint, not its metrics
    with StageRun("search", "goes-on", {"lr": 0.1}, PARAMS_TEXT, checkpoint=checkpoint) as run:
        assert run.continued and run.run_id == old
        for step in (1, 2, 3, 4):  # the resumed history (1..3), then the new epoch
            run.log_metrics({"loss": 1.0 / step, "acc": 0.1 * step}, step=step)
    got = client.get_run(old)
    assert got.info.status == "FINISHED" and got.data.tags["ednas.pid"] == str(os.getpid())
    assert "ednas.resumed_from_run" not in got.data.tags
    assert metric_steps(client, old, "loss") == metric_steps(client, old, "acc") == [1, 2, 3, 4]
    experiment = client.get_experiment_by_name("ednas-goes-on").experiment_id
    stage_runs = client.search_runs([experiment], filter_string="tags.`ednas.stage` != 'pipeline'")
    assert [r.info.run_id for r in stage_runs] == [old]
    assert not checkpoint.with_name("mlflow_run.json").exists()  # finished: nothing to go on with


@pytest.mark.parametrize("left", ["deleted", "finished", "failed", "other parameters"])
def test_checkpoint_whose_run_cannot_go_on_starts_a_new_run_tagged_with_it(env, checkpoint, left):
    root, client = env
    task = f"gone-{left.replace(' ', '-')}"
    old = killed_execution("search", task, checkpoint, steps=(1,))
    if left == "deleted":
        client.delete_run(old)
    elif left in ("finished", "failed"):
        client.set_terminated(old, left.upper())
    checkpoint.write_bytes(b"epoch 1")
    params = {"lr": 0.2} if left == "other parameters" else {"lr": 0.1}
    with StageRun("search", task, params, PARAMS_TEXT, checkpoint=checkpoint) as run:
        assert not run.continued and run.run_id != old
        assert json.loads(checkpoint.with_name("mlflow_run.json").read_text())["run_id"] == run.run_id
        run.log_metrics({"loss": 1.0}, step=1)
    new = client.get_run(run.run_id)
    assert new.info.status == "FINISHED" and new.data.tags["ednas.resumed_from_run"] == old
    assert metric_steps(client, run.run_id, "loss") == [1]
    before = {"deleted": "RUNNING", "finished": "FINISHED", "failed": "FAILED", "other parameters": "KILLED"}[left]
    assert client.get_run(old).info.status == before  # a RUNNING one not gone on with is closed as KILLED


def test_abandoned_runs_of_the_stage_and_directory_are_closed_as_killed(env, checkpoint, tmp_path, monkeypatch):
    root, client = env
    task = "abandoned"
    other_stage = killed_execution("evaluate", task, checkpoint.with_name("other.ckpt"))
    other_host = killed_execution("search", task, checkpoint)
    client.set_tag(other_host, "ednas.host", "another-machine")
    with subprocess.Popen(["sleep", "60"]) as sleeper:
        alive = killed_execution("search", task, checkpoint)
        client.set_tag(alive, "ednas.pid", str(sleeper.pid))
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        monkeypatch.chdir(elsewhere)
        other_dir = killed_execution("search", task, elsewhere / "checkpoint.safetensors")
        monkeypatch.chdir(tmp_path)
        dead = killed_execution("search", task, checkpoint)  # last: each execution's start closes those before
        assert not checkpoint.exists()  # nothing to resume: a new run, and the dead one of this place is closed
        with StageRun("search", task, {"lr": 0.1}, PARAMS_TEXT, checkpoint=checkpoint) as run:
            assert not run.continued
        sleeper.kill()
    closed = client.get_run(dead)
    assert closed.info.status == "KILLED" and closed.data.tags["error"].startswith("its process ended")
    assert run.run_id in closed.data.tags["error"]
    for kept in (other_stage, other_host, alive, other_dir):
        assert client.get_run(kept).info.status == "RUNNING", kept
    assert "ednas.resumed_from_run" not in client.get_run(run.run_id).data.tags


def test_parent_of_a_killed_stage_rerun_as_another_pipeline_is_closed_as_killed(env, checkpoint):
    """Killed, then rerun with other params (another pipeline id): nothing goes on with the old pipeline, so its
    parent must not stay RUNNING for ever; a rerun of the same pipeline takes the parent over instead."""
    root, client = env
    old = killed_execution("search", "killed-parent", checkpoint)
    old_parent = client.get_run(old).data.tags["mlflow.parentRunId"]
    with StageRun("search", "killed-parent", {"lr": 0.2}, PARAMS_TEXT + "\n# search.lr changed\n",
                  checkpoint=checkpoint) as run:
        assert run.parent_id != old_parent
    assert client.get_run(old).info.status == "KILLED"
    parent = client.get_run(old_parent)
    assert parent.info.status == "KILLED" and run.run_id in parent.data.tags["error"]
    assert parent.data.tags["error"].startswith("search: its process was killed")
    assert client.get_run(run.parent_id).info.status == "FINISHED"

    again = killed_execution("search", "killed-parent", checkpoint, params={"lr": 0.3})
    same_parent = client.get_run(again).data.tags["mlflow.parentRunId"]
    checkpoint.unlink(missing_ok=True)
    with StageRun("search", "killed-parent", {"lr": 0.3}, PARAMS_TEXT, checkpoint=checkpoint) as rerun:
        assert rerun.parent_id == same_parent  # the same pipeline: its own parent, RUNNING again, then FINISHED
    assert client.get_run(same_parent).info.status == "FINISHED"


def test_killed_stage_of_a_deleted_experiment_copy_is_closed_by_a_stage_elsewhere(env, tmp_path, monkeypatch):
    """`dvc queue kill --force` SIGKILLs DVC, whose stage then dies (end_with_parent) with its run open, and DVC
    deletes the experiment's copy: no rerun will ever run in that directory. The next execution of the stage,
    wherever it runs, closes that run and its pipeline; a dead run whose directory still exists is left to it."""
    root, client = env
    copies = [tmp_path / ".dvc/tmp/exps" / name for name in ("deleted", "kept")]
    killed = []
    for copy in copies:
        (copy / "data/search").mkdir(parents=True)
        monkeypatch.chdir(copy)
        killed.append(killed_execution("search", "copies", copy / "data/search/checkpoint.safetensors",
                                       text=f"{PARAMS_TEXT}\n# experiment {copy.name}\n"))
    monkeypatch.chdir(tmp_path)
    shutil.rmtree(copies[0])
    with StageRun("search", "copies", {"lr": 0.5}, PARAMS_TEXT + "\n# another experiment\n") as run:
        pass
    deleted, kept = (client.get_run(r) for r in killed)
    assert deleted.info.status == "KILLED" and kept.info.status == "RUNNING"
    assert f"its working copy {copies[0].resolve()} is gone" in deleted.data.tags["error"]
    parent = client.get_run(deleted.data.tags["mlflow.parentRunId"])
    assert parent.info.status == "KILLED" and run.run_id in parent.data.tags["error"]
    assert "a killed `dvc exp run --temp/--queue`" in parent.data.tags["error"]
    assert client.get_run(kept.data.tags["mlflow.parentRunId"]).info.status == "RUNNING"


def test_restart_closes_the_run_gone_on_with_and_replays_its_setup(env, checkpoint, tmp_path):
    root, client = env
    old = killed_execution("evaluate", "restart", checkpoint, steps=(1, 2))
    checkpoint.write_bytes(b"epochs 1..2 of other settings")
    with StageRun("evaluate", "restart", {"lr": 0.1}, PARAMS_TEXT, checkpoint=checkpoint) as run:
        assert run.continued
        run.set_tags({"ednas.device": "cpu"})
        run.log_dict({"normal": [1, 2]}, "genotype.json")
        run.restart()  # the stage found the checkpoint is from other settings and starts over
        assert not run.continued and run.run_id != old
        assert json.loads(checkpoint.with_name("mlflow_run.json").read_text())["run_id"] == run.run_id
        run.log_metrics({"loss": 0.5}, step=1)
    closed, new = client.get_run(old), client.get_run(run.run_id)
    assert closed.info.status == "KILLED" and run.run_id in closed.data.tags["error"]
    assert new.info.status == "FINISHED" and new.data.params == {"lr": "0.1"}
    assert new.data.tags["ednas.device"] == "cpu" and "ednas.resumed_from_run" not in new.data.tags
    assert read_artifact(client, run.run_id, "genotype.json", tmp_path) == {"normal": [1, 2]}
    assert [(m.step, m.value) for m in client.get_metric_history(run.run_id, "loss")] == [(1, 0.5)]


def test_restart_of_a_new_run_drops_its_resumed_from_tag(env, checkpoint):
    root, client = env
    old = killed_execution("search", "restart-new", checkpoint)
    client.delete_run(old)
    checkpoint.write_bytes(b"epoch 1")
    with StageRun("search", "restart-new", {"lr": 0.1}, PARAMS_TEXT, checkpoint=checkpoint) as run:
        first = run.run_id
        assert client.get_run(first).data.tags["ednas.resumed_from_run"] == old
        run.restart()
        assert run.run_id == first
    assert "ednas.resumed_from_run" not in client.get_run(first).data.tags


def test_an_experiment_created_by_another_process_meanwhile_is_used(env, monkeypatch):
    """With a team server there is no file lock: two first stages can both find no experiment and create it."""
    root, client = env
    from mlflow.tracking import MlflowClient

    real = MlflowClient.get_experiment_by_name
    calls = []

    def late(self, name):  # the first look finds nothing; another process creates it before this one does
        calls.append(name)
        if len(calls) == 1:
            MlflowClient(tracking_uri=f"sqlite:///{root}/mlflow.db").create_experiment(name)
            return None
        return real(self, name)

    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", late)
    run = StageRun("search", "raced", {}, PARAMS_TEXT)
    monkeypatch.setattr(MlflowClient, "get_experiment_by_name", real)
    assert run.experiment_id == client.get_experiment_by_name("ednas-raced").experiment_id
