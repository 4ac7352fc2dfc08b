"""`runtime.gpus: 2` on the CPU: `dvc repro` runs search and evaluate as two gloo processes each (the stages
re-launch themselves under torchrun); rank 0 alone writes the outputs and logs one MLflow run per stage. The image
task digits and the text task markov (each rank its columns of the token streams)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pipeline import TINY, dvc, mlflow_runs
from tools.workspace import make_workspace

pytestmark = pytest.mark.slow


def _two_process_pipeline(ws: Path, task: str, search_metric: str) -> tuple[dict, dict]:
    """Runs `dvc repro` and checks what any 2-process pipeline must show: torchrun ran, one MLflow run per stage
    (not per rank), search and evaluate finished with world size 2, each search epoch logged once, no
    checkpoint or temporary file left. Returns the stage runs by name and metrics/evaluate.json."""
    done = dvc(ws, "repro")
    out = done.stdout + done.stderr
    assert "torch.distributed.run" in out or "torchrun" in out, out[-3000:]
    runs = mlflow_runs(ws, task=task)
    stages = sorted(r.data.tags["ednas.stage"] for r in runs)
    assert stages == ["derive", "evaluate", "prepare-data", "report", "search"]  # one run per stage, not per rank
    by_stage = {r.data.tags["ednas.stage"]: r for r in runs}
    for name in ("search", "evaluate"):
        run = by_stage[name]
        assert run.info.status == "FINISHED" and run.data.tags.get("ednas.world_size") == "2", run.data.tags
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    history = client.get_metric_history(by_stage["search"].info.run_id, search_metric)
    assert sorted(m.step for m in history) == [1, 2]  # each epoch logged once, by rank 0
    assert not list((ws / "data").rglob("*.tmp*")) and not (ws / "data/search/checkpoint.safetensors").exists()
    assert not (ws / "data/evaluate/checkpoint.safetensors").exists()
    return by_stage, json.loads((ws / "metrics/evaluate.json").read_text())


def test_two_processes_run_the_pipeline_and_rank_0_alone_logs(tmp_path):
    ws = make_workspace(tmp_path / "repo", {**TINY, "runtime.gpus": 2})
    _, evaluate = _two_process_pipeline(ws, "digits", "child_acc")
    assert 0.0 <= evaluate["test_error"] <= 100.0 and evaluate["params"] > 0


def test_two_processes_run_the_text_pipeline_and_rank_0_alone_logs(tmp_path):
    """The text task markov (recurrent cells) on 2 gloo processes: each rank its columns of the token streams."""
    tiny_text = {
        "task": "markov", "runtime.device": "cpu", "runtime.gpus": 2,
        "markov.search.epochs": 2, "markov.search.emb": 8, "markov.search.hidden": 8,
        "markov.derive.samples": 10,
        "markov.evaluate.epochs": 2, "markov.evaluate.emb": 8, "markov.evaluate.hidden": 8,
    }
    ws = make_workspace(tmp_path / "repo", tiny_text)
    by_stage, evaluate = _two_process_pipeline(ws, "markov", "child_ppl")
    assert 1.0 < evaluate["test_ppl"] < 50.0 and evaluate["params"] > 0  # below the 50-word vocabulary
    assert by_stage["evaluate"].data.metrics["test_ppl"] == pytest.approx(evaluate["test_ppl"])
