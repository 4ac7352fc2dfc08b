"""report: what the pipeline found, against the paper, and against every other pipeline in the MLflow store.

Reads metrics/{search,derive,evaluate}.json (headline numbers) with metrics/info/{search,derive,evaluate}.json (the
rest: devices, MLflow run ids, the genotype source), metrics/{search,evaluate}_epochs.csv,
data/search/policy_history.npz and the evaluated genotype (data/derive/genotype.json, or the named one in
metrics/info/evaluate.json), and writes

- metrics/report.md and metrics/report.html (the same content; the HTML is self-contained, figures inline as
  base64 PNG): configuration, measured search cost, derived genotype, evaluation, the paper's numbers for the task
  side by side with the difference, learning curves, policy heatmaps, sampling histograms, cell diagrams, the
  comparison of pipelines and the MLflow run ids;
- metrics/figures/: the figures (PNG; cell diagrams also SVG), including the paper's three genotypes;
- metrics/comparison.{md,csv}: one row per pipeline (runs grouped by the tag ednas.pipeline_id) of every
  `ednas-<task>` experiment in the tracking store, sorted by the task's main metric;
- metrics/study.{md,csv} and metrics/figures/study.png: the same pipelines grouped across seeds (mean +- std of
  each setting, failed pipelines listed; ednas_core/report/seed_study.py); metrics/figures/study_curves.png where
  the task has per-epoch curves against a benchmark's truth (nb201).

The comparison and the study read the tracking store (once), which DVC does not track: after other experiments
finish, refresh them with `dvc repro -f -s report` (or `python -m stages.report`); `python -m tools.study` writes the
study alone."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from ednas_core.checkpoint import atomic_write_text
from ednas_core.tasks import get_task
from ednas_core.report import (build_report, comparison_table, markdown_to_html, pipelines_from_runs,
                               results_pipeline, reused_headline, used_tag, write_comparison, write_figures)
from ednas_core.report.seed_study import build_study, write_study

from .common import (DERIVE_DIR, METRICS_DIR, SEARCH_DIR, StageError, flat_params, read_params, replace_folder,
                     run_stage, stage_tags)

FIGURES_DIR = METRICS_DIR / "figures"
INFO_DIR = METRICS_DIR / "info"  # what each stage records beside its metrics: names, ids, secondary numbers
HISTORY = SEARCH_DIR / "policy_history.npz"


def _load(name: str) -> dict[str, Any]:
    """A stage's headline metrics (metrics/<name>) and the rest of what it recorded (metrics/info/<name>), merged."""
    merged: dict[str, Any] = {}
    for path in (METRICS_DIR / name, INFO_DIR / name):
        if not path.is_file():
            raise StageError(f"{path} is missing; run the stage that writes it first (dvc repro)")
        merged.update(json.loads(path.read_text()))
    return merged


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _history() -> dict[str, np.ndarray] | None:
    if not HISTORY.is_file():
        return None
    with np.load(HISTORY) as data:
        return {k: data[k] for k in data.files}


def main() -> None:
    from ednas_core.tracking import StageRun, ednas_runs, metric_histories_or_warning

    params, text = read_params()
    search, derive, evaluate = _load("search.json"), _load("derive.json"), _load("evaluate.json")
    source = evaluate["genotype"]
    genotype = get_task(params.task).genotype_of(source, DERIVE_DIR / "genotype.json")  # nb201: a string too
    flat = flat_params(params)
    with StageRun("report", params.task, flat, text, extra_tags=stage_tags(params)) as run:
        staging = METRICS_DIR / ".report-staging" / FIGURES_DIR.name  # same folder name: the figures' links hold
        shutil.rmtree(staging.parent, ignore_errors=True)
        staging.mkdir(parents=True)
        figures = write_figures(staging, _history(), genotype, "derived" if source == "derived" else source,
                                _read_rows(METRICS_DIR / "search_epochs.csv"),
                                _read_rows(METRICS_DIR / "evaluate_epochs.csv"), params.task_config().search.strategy,
                                task=params.task)
        # the stage runs whose results this report shows, tagged before the store is read: a stage that DVC skipped
        # here (its inputs unchanged) is an earlier pipeline's run, which this pipeline's row then reuses
        used = {stage: info.get("mlflow_run_id", "") for stage, info in
                (("evaluate", evaluate), ("derive", derive), ("search", search))}
        run.set_tags({used_tag(stage): run_id for stage, run_id in used.items() if run_id})
        runs = ednas_runs()
        current = results_pipeline(runs, list(used.values()), run.tags["ednas.pipeline_id"])
        pipelines = pipelines_from_runs(runs, current, writing=run.run_id)
        this = next((p for p in pipelines if p["pipeline"] == current == run.tags["ednas.pipeline_id"]), None)
        if this is not None and this["reused"]:  # its parent run gets the reused stages' headline numbers too
            run.log_pipeline_metrics(reused_headline(runs, this))
            run.set_pipeline_tags({"ednas.reused": this["reused"]})
        comparison = comparison_table(pipelines, params.task, current)
        write_comparison(*comparison, METRICS_DIR / "comparison.md", METRICS_DIR / "comparison.csv")
        study = build_study(pipelines, params.task)
        if study.curve_runs():  # nb201: each search's history of the truth, read once per run
            study.curves, warning = metric_histories_or_warning(study.curve_runs(), study.curve_keys())
            if warning:
                print(f"report: warning: {warning}", file=sys.stderr)
        study_figure = f"{FIGURES_DIR.name}/study.png"  # relative to metrics/, once the staging folder is in place
        curves_figure = f"{FIGURES_DIR.name}/study_curves.png"
        write_study(study, METRICS_DIR / "study.md", METRICS_DIR / "study.csv", staging / "study.png", study_figure,
                    staging / "study_curves.png", curves_figure)
        if not (staging / "study_curves.png").is_file():
            curves_figure = ""
        replace_folder(staging, FIGURES_DIR)  # no figure of an earlier run (another task) stays behind
        staging.parent.rmdir()
        report = build_report(params.task, flat, search, derive, evaluate, genotype.to_dict(), figures=figures,
                              comparison=comparison, study=study, study_figure=study_figure,
                              study_curves_figure=curves_figure, report_run_id=run.run_id)
        atomic_write_text(METRICS_DIR / "report.md", report)
        atomic_write_text(METRICS_DIR / "report.html",
                          markdown_to_html(report, METRICS_DIR, f"EDNAS report: {params.task}"))
        for name in ("report.md", "report.html", "comparison.md", "comparison.csv", "study.md", "study.csv"):
            run.log_artifact(METRICS_DIR / name)
        for path in [ref.path for ref in figures.all()] + [study_figure] + ([curves_figure] if curves_figure else []):
            run.log_artifact(METRICS_DIR / path, "figures")
        print(f"report: {METRICS_DIR / 'report.md'}, {METRICS_DIR / 'report.html'}, {FIGURES_DIR}/ "
              f"({len(figures.all())} figures), {len(comparison[1])} pipelines in {METRICS_DIR / 'comparison.md'}, "
              f"{len(study.groups)} groups across seeds in {METRICS_DIR / 'study.md'}")


if __name__ == "__main__":
    run_stage("report", main)
