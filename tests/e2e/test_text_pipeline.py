"""The recurrent half through the real pipeline: `dvc repro` of all five stages on the generated Markov corpus
(task markov, tiny sizes), with recurrent policy vectors in MLflow and perplexity in the metrics."""

from __future__ import annotations

import json

import pytest

from pipeline import dvc, mlflow_runs
from tools.workspace import make_workspace

pytestmark = pytest.mark.slow

TINY_TEXT = {
    "task": "markov", "runtime.device": "cpu",
    "markov.search.epochs": 2, "markov.search.emb": 8, "markov.search.hidden": 8,
    "markov.derive.samples": 10,
    "markov.evaluate.epochs": 2, "markov.evaluate.emb": 8, "markov.evaluate.hidden": 8,
}


def test_text_pipeline_runs_end_to_end(tmp_path):
    ws = make_workspace(tmp_path / "repo", TINY_TEXT)
    dvc(ws, "repro")
    genotype = json.loads((ws / "data/derive/genotype.json").read_text())
    assert genotype["space"] == "rnn" and len(genotype["recurrent"]) == 8
    evaluate = json.loads((ws / "metrics/evaluate.json").read_text())
    assert 1.0 < evaluate["test_ppl"] < 50.0  # below the 50-word vocabulary: the model learned something
    assert json.loads((ws / "metrics/prepare.json").read_text())["vocab_size"] == 50
    runs = {r.data.tags["dvc.stage"]: r for r in mlflow_runs(ws, task="markov")}
    assert {"prepare-data", "search", "derive", "evaluate", "report"} <= set(runs)
    assert all(r.info.status == "FINISHED" for r in runs.values())
    assert "child_ppl" in runs["search"].data.metrics
    assert runs["evaluate"].data.metrics["test_ppl"] == pytest.approx(evaluate["test_ppl"])  # the final pass
    assert "up to date" in dvc(ws, "status").stdout
    plots = dvc(ws, "plots", "show", "-o", str(tmp_path / "plots"))
    assert "could not find" not in plots.stdout + plots.stderr and (tmp_path / "plots/index.html").is_file()
