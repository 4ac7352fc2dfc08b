"""The report stage's study across seeds (main() in a temporary working directory, the fake metrics files of
test_report_stage, a temporary SQLite MLflow store): metrics/study.{md,csv}, metrics/figures/study.png, the report's
section and the MLflow artifacts; a store holding only the report's own pipeline still gives a report."""

from __future__ import annotations

import csv
import dataclasses
import re
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from ednas_core.config import Params
from ednas_core.report import Figures
from stages import report as report_stage
from stages.common import flat_params
from test_report_stage import log_pipeline, run_report, write_inputs  # same folder: the stage's fake inputs

# (pipeline, seed, test error or None: evaluate failed)
SEEDS = [("s1", 1, 2.0), ("s3", 3, 3.0), ("s4", 4, None)]


def study_rows(root: Path) -> list[dict[str, str]]:
    with open(root / "metrics/study.csv", newline="") as f:
        return list(csv.DictReader(f))


def report_artifacts(root: Path) -> set[str]:
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("ednas-digits")
    (run,) = client.search_runs([experiment.experiment_id], "tags.`ednas.stage` = 'report'")
    return {a.path for a in client.list_artifacts(run.info.run_id)} | \
        {a.path for a in client.list_artifacts(run.info.run_id, "figures")}


@pytest.fixture
def no_figures(monkeypatch):
    monkeypatch.setattr(report_stage, "write_figures", lambda *a, **k: Figures())  # covered by test_report_stage


def test_seeds_of_the_store_make_the_study(tmp_path, monkeypatch, no_figures):
    write_inputs(tmp_path)
    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("ednas-digits", artifact_location=(tmp_path / "mlruns").as_uri())
    base = flat_params(dataclasses.replace(Params(), task="digits"))
    for pid, seed, error in SEEDS:
        stages = ("search", "derive", "evaluate") if error is not None else ("search",)
        log_pipeline(client, experiment, pid, "digits", pid, {**base, "runtime.seed": seed}, error, stages)
    failed = client.create_run(experiment, tags={"ednas.pipeline_id": "s4", "ednas.stage": "evaluate",
                                                 "ednas.task": "digits", "error": "ValueError: bad genotype"})
    client.set_terminated(failed.info.run_id, "FAILED")
    run_report(tmp_path, monkeypatch)

    (row,) = study_rows(tmp_path)  # the report's own pipeline (seed 2, no evaluate run) is the same setting
    assert (row["task"], row["strategy"], row["n"], row["seeds"]) == ("digits", "ednas", "2", "1 3")
    assert (row["failed"], row["incomplete"]) == ("1", "1")
    assert float(row["mean"]) == 2.5 and float(row["std"]) == pytest.approx(0.5 ** 0.5)
    study = (tmp_path / "metrics/study.md").read_text()
    assert "| digits | ednas | s4 | s4 | 4 | evaluate | ValueError: bad genotype |" in study
    assert "](figures/study.png)" in study
    assert (tmp_path / "metrics/figures/study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "metrics/.report-staging").exists()
    report = (tmp_path / "metrics/report.md").read_text()
    section = report[report.index("## Study across seeds"):]
    assert "| digits | ednas | 2 | 1 3 | 1 | 1 | test error (%) | 2.5 ± 0.71 | 2 / 3 |" in section
    assert "![seeds of each group, mean ± std](figures/study.png)" in section
    page = (tmp_path / "metrics/report.html").read_text()
    assert len(re.findall(r'<img src="data:image/png;base64,', page)) == 1  # the study's plot, inline
    assert {"study.md", "study.csv", "figures/study.png"} <= report_artifacts(tmp_path)


def test_a_store_with_only_this_pipeline(tmp_path, monkeypatch, no_figures):
    write_inputs(tmp_path)
    run_report(tmp_path, monkeypatch)
    (row,) = study_rows(tmp_path)
    assert (row["task"], row["n"], row["seeds"], row["failed"], row["incomplete"]) == ("digits", "0", "", "0", "1")
    assert "## Study across seeds" in (tmp_path / "metrics/report.md").read_text()
    assert (tmp_path / "metrics/figures/study.png").is_file()
