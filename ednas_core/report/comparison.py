"""The comparison of pipelines: runs grouped by the tag ednas.pipeline_id into one row a pipeline, ranked by
the task's main metric, written as comparison.{md,csv}.

Works on run-like objects (`info.status`, `info.start_time`, `data.tags`, `data.params`, `data.metrics`, as
MLflow's runs have them); reading them from the tracking store is ednas_core.tracking's (ednas_runs: the report
stage and tools/study.py read them once)."""

from __future__ import annotations

import csv
import io
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from ednas_core.checkpoint import atomic_write_text
from ednas_core.config import task_prefix

from .markdown import md_table
from .paper import main_metric

SEARCH_KEYS = {"search_child_acc": "child_acc", "search_reward": "reward"}
COMPARISON_FIXED = ["pipeline", "task", "strategy", "experiment", "git_rev", "started", "stages", "status"]
COMPARISON_METRICS = ["search_child_acc", "search_reward", "search_rewards_total", "search_hours",
                      "derive_best_reward", "test_error", "test_ppl", "params_m"]


STAGE_ORDER = ("prepare-data", "search", "derive", "evaluate", "report")
RESULT_STAGES = ("search", "derive", "evaluate")  # the stages whose results a report describes
PARENT_STAGE = "pipeline"  # ednas.stage of a pipeline's parent run (tracking.PIPELINE_STAGE): not a stage's run
FAILED_STATUSES = ("FAILED", "KILLED")


def _status(run: Any, writing: str = "") -> str:
    """A run's status; `writing`, the id of the report run that writes the table (RUNNING while it does), counts
    as FINISHED: a finished pipeline's own report must not call it running. Should that report fail after
    writing the table, its run is FAILED and the next table says so."""
    if writing and getattr(run.info, "run_id", None) == writing:
        return "FINISHED"
    return run.info.status


def _pick(runs: list[Any], writing: str = "") -> Any:
    """The latest finished run of a stage in a pipeline (else the latest run)."""
    finished = [r for r in runs if _status(r, writing) == "FINISHED"]
    return max(finished or runs, key=lambda r: r.info.start_time or 0)


def _latest(runs: list[Any]) -> Any:
    return max(runs, key=lambda r: r.info.start_time or 0)


def pipeline_status(stages: Mapping[str, list[Any]], writing: str = "") -> tuple[str, str, str]:
    """(status, failed stage, error) of a pipeline from its stage runs, each stage judged by its latest run: a
    FAILED or KILLED one (no later FINISHED run) fails the pipeline at the first such stage in pipeline order,
    with that run's `error` tag, as "failed at <stage>" or "killed at <stage>"; else "running" while a stage's
    latest run is RUNNING (or SCHEDULED); else "finished" once its evaluate or report stage has run, and
    "stopped after <stage>" before: `dvc repro search` alone, an interrupt between two stages, or a stage that
    stopped on its inputs before it opened its run (a corrupt supernet file, say; its error is DVC's output).
    `writing`: see _status."""
    order = sorted(stages, key=lambda s: (STAGE_ORDER.index(s) if s in STAGE_ORDER else len(STAGE_ORDER), s))
    latest = {stage: _latest(stages[stage]) for stage in order}
    for stage in order:
        if _status(latest[stage], writing) in FAILED_STATUSES:
            how = "killed" if latest[stage].info.status == "KILLED" else "failed"
            return f"{how} at {stage}", stage, latest[stage].data.tags.get("error", "")
    if any(_status(run, writing) != "FINISHED" for run in latest.values()):
        return "running", "", ""
    if {"evaluate", "report"} & set(order) or not order:
        return "finished", "", ""
    return f"stopped after {order[-1]}", "", ""


def used_tag(stage: str) -> str:
    """The report run's tag naming the run of `stage` whose results it reported (metrics/info/<stage>.json)."""
    return f"ednas.used.{stage}"


def results_pipeline(runs: Iterable[Any], run_ids: Sequence[str], own: str) -> str:
    """The pipeline a report describes: its own (`own`, the report run's) when a search, derive or evaluate run of
    it is among `runs`; else that of the first of `run_ids` (the stage runs recorded in metrics/info/*.json,
    evaluate first) found among `runs`, else `own`. A pipeline in which DVC skipped a stage whose inputs had not
    changed reuses that stage's results from an earlier pipeline (pipelines_from_runs), and is still the one its
    report is about. After `git commit`, `dvc repro -f -s report` runs at another revision, so its report run starts
    a pipeline of its own in which no stage ran; the results' pipeline is the one that report is about."""
    runs = list(runs)
    if any(run.data.tags.get("ednas.pipeline_id") == own and _stage(run) in RESULT_STAGES for run in runs):
        return own
    by_id = {getattr(run.info, "run_id", None): run for run in runs}
    for run_id in run_ids:
        run = by_id.get(run_id) if run_id else None
        if run is not None and run.data.tags.get("ednas.pipeline_id"):
            return run.data.tags["ednas.pipeline_id"]
    return own


def _stage(run: Any) -> str:
    tags = run.data.tags
    return tags.get("ednas.stage") or tags.get("dvc.stage", "?")


def pipelines_from_runs(runs: Iterable[Any], current: str = "", writing: str = "") -> list[dict[str, Any]]:
    """Groups MLflow runs by ednas.pipeline_id: one dict per pipeline with its tags, params and headline
    metrics (NaN where a stage did not run or did not log the metric) and its status (pipeline_status: `status`,
    `failed_stage`, `error`). The pipeline's parent run (ednas.stage `pipeline`) is not a stage's and is skipped.
    Pipelines without a search, derive or evaluate run are left out, except `current` and failed ones.
    `writing`: the id of the report run that writes the table (see _status).

    A stage that DVC skipped in a pipeline (its inputs unchanged: an ablation of evaluate's settings reuses the
    search, a search that derives the same cell as the last one reuses its evaluation) has no run there; the
    pipeline's report names the run whose results it reported (used_tag), and that run's metrics fill the
    pipeline's row. `reused` says which stages came from which pipeline ("evaluate of <pipeline>")."""
    groups: dict[str, dict[str, list]] = {}
    runs = list(runs)
    by_id = {getattr(run.info, "run_id", None): run for run in runs}
    for run in runs:
        pid = run.data.tags.get("ednas.pipeline_id")
        if not pid:
            continue
        stage = _stage(run)
        if stage == PARENT_STAGE:
            continue
        groups.setdefault(pid, {}).setdefault(stage, []).append(run)
    out = []
    for pid, stages in groups.items():
        status, failed_stage, error = pipeline_status(stages, writing)
        if not set(RESULT_STAGES) & set(stages) and pid != current and not failed_stage:
            continue  # only a prepare-data or report run: nothing to compare
        picked = {stage: _pick(rs, writing) for stage, rs in stages.items()}
        any_run = picked.get("search") or next(iter(picked.values()))
        tags = any_run.data.tags
        started = min(r.info.start_time or 0 for rs in stages.values() for r in rs)
        finished = [s for s in STAGE_ORDER if s in picked and _status(picked[s], writing) == "FINISHED"]
        reused = _reused(picked, by_id, pid, writing)
        picked.update({stage: run for stage, (run, _) in reused.items()})

        def metric(stage: str, key: str) -> float:
            run = picked.get(stage)
            return float(run.data.metrics[key]) if run is not None and key in run.data.metrics else math.nan

        hours = metric("search", "search_gpu_hours")
        if math.isnan(hours):
            hours = metric("search", "search_cpu_hours")
        out.append({
            "pipeline": pid,
            "task": tags.get("ednas.task", ""),
            "strategy": tags.get("ednas.strategy") or _strategy_param(tags.get("ednas.task", ""), any_run.data.params),
            "experiment": tags.get("dvc.exp_name") or "workspace",
            "git_rev": tags.get("git.rev", "")[:8],
            "started": datetime.fromtimestamp(started / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "started_ms": started,
            "stages": " ".join(finished),
            "reused": ", ".join(f"{stage} of {source}" for stage, (_, source) in reused.items()),
            "reused_from": {stage: source for stage, (_, source) in reused.items()},
            "search_run_id": picked["search"].info.run_id if "search" in picked else "",
            "search_child_acc": metric("search", "child_acc"),
            "search_reward": metric("search", "reward"),
            "search_rewards_total": metric("search", "rewards_total"),
            # nb201: the strategy's answer in the table, the shared weights' ranking (last epoch's; NaN elsewhere)
            "search_answer_test_acc": metric("search", "answer_test_acc"),
            "search_rank_kendall_tau": metric("search", "rank_kendall_tau"),
            "search_hours": hours,
            "derive_best_reward": metric("derive", "best_reward"),
            "test_error": metric("evaluate", "test_error"),
            "test_ppl": metric("evaluate", "test_ppl"),
            "params_m": metric("evaluate", "params_m"),
            "params": dict(any_run.data.params),
            "status": status,
            "failed_stage": failed_stage,
            "error": error,
        })
    return out


def _reused(picked: Mapping[str, Any], by_id: Mapping[Any, Any], pid: str, writing: str
            ) -> dict[str, tuple[Any, str]]:
    """{stage: (run, its pipeline)} for each result stage that pipeline `pid` did not run but whose finished run of
    another pipeline its finished report names (used_tag)."""
    report = picked.get("report")
    if report is None or _status(report, writing) != "FINISHED":
        return {}
    out = {}
    for stage in RESULT_STAGES:
        run = by_id.get(report.data.tags.get(used_tag(stage)))
        if stage in picked or run is None or _status(run, writing) != "FINISHED":
            continue
        source = run.data.tags.get("ednas.pipeline_id", "")
        if source and source != pid and _stage(run) == stage:
            out[stage] = (run, source)
    return out


def parent_metric_stage(key: str) -> str:
    """The stage that put a headline number on a pipeline's parent run: search_* the search's, derive_* derive's,
    the others (test_error, params_m, evaluate_hours, ...) evaluate's."""
    return next((stage for stage in ("search", "derive") if key.startswith(f"{stage}_")), "evaluate")


def reused_headline(runs: Iterable[Any], pipeline: Mapping[str, Any]) -> dict[str, float]:
    """The headline numbers of the stages `pipeline` reused (its reused_from), as the parent runs of the pipelines
    that ran them hold them: what its own parent run lacks for `mlflow ui` to compare it with the others."""
    parents = {run.data.tags.get("ednas.pipeline_id"): run for run in runs if _stage(run) == PARENT_STAGE}
    out: dict[str, float] = {}
    for stage, source in pipeline.get("reused_from", {}).items():
        parent = parents.get(source)
        if parent is not None:
            out.update({k: float(v) for k, v in parent.data.metrics.items() if parent_metric_stage(k) == stage})
    return out


def strategy_key(task: str) -> str:
    """The flat key of a task's search strategy (shown as the strategy column, not as a parameter column)."""
    return f"{task_prefix(task)}search.strategy"


def _strategy_param(task: str, params: Mapping[str, str]) -> str:
    """The search strategy of a run without the ednas.strategy tag (older runs): its task's search.strategy."""
    return params.get(strategy_key(task), "ednas")


def varying_keys(members: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """The keys that tell (strategy, params) members apart beyond their strategy: a key with two or more values
    among the members that have it, or one that some members of the same strategy have and others do not. A key
    that only one strategy's members have and share (its section: search.nao.*, only a nao run logs it) says
    nothing the strategy column does not."""
    keys: list[str] = []
    for key in sorted(set().union(*(params for _, params in members))):
        if len({str(params[key]) for _, params in members if key in params}) > 1:
            keys.append(key)
            continue
        by_strategy: dict[str, set[bool]] = {}
        for strategy, params in members:
            by_strategy.setdefault(strategy, set()).add(key in params)
        if any(len(present) > 1 for present in by_strategy.values()):
            keys.append(key)
    return keys


def differing_params(pipelines: Sequence[Mapping[str, Any]]) -> list[str]:
    """Parameter keys that differ between pipelines of the same task (varying_keys; tracking.* excluded: it does
    not change results; the task's search.strategy is the strategy column)."""
    by_task: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
    for p in pipelines:
        params = {k: v for k, v in p["params"].items()
                  if not k.startswith("tracking.") and k != strategy_key(p["task"])}
        by_task.setdefault(p["task"], []).append((p["strategy"], params))
    return sorted(set().union(*(varying_keys(members) for members in by_task.values())))


def comparison_table(pipelines: Sequence[Mapping[str, Any]], task: str,
                     current: str = "") -> tuple[list[str], list[list[Any]]]:
    """Header and rows: the current task's pipelines first, each task sorted by its main metric ascending
    (pipelines without it last, newest first among them); `current` marks this report's pipeline; a `reused`
    column where some pipeline reused another's stage."""
    varying = differing_params(pipelines)
    metrics = [m for m in COMPARISON_METRICS
               if m not in ("test_error", "test_ppl") or any(not math.isnan(p[m]) for p in pipelines)]

    def order(p: Mapping[str, Any]) -> tuple:
        value = p[main_metric(p["task"])]
        missing = math.isnan(value)
        return (p["task"] != task, p["task"], missing, 0.0 if missing else value, -p.get("started_ms", 0))

    ranked = sorted(pipelines, key=order)
    fixed = COMPARISON_FIXED + (["reused"] if any(p.get("reused") for p in pipelines) else [])
    header = fixed + ["this"] + varying + metrics
    rows = [[p.get(k, "") for k in fixed] + ["yes" if p["pipeline"] == current else ""] +
            [p["params"].get(k, "") for k in varying] + [p[m] for m in metrics] for p in ranked]
    return header, rows


def write_comparison(header: list[str], rows: list[list[Any]], md_path: Path, csv_path: Path) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
    atomic_write_text(csv_path, buffer.getvalue())
    text = "\n".join(["# EDNAS pipelines in the tracking store", "",
                      "One row per pipeline (MLflow runs sharing the tag ednas.pipeline_id), ranked by the task's "
                      "main metric (lower is better). `stages`: those that finished; `status`: finished, "
                      "running, failed / killed at a stage (its metrics are those it logged until then), or "
                      "stopped after a stage (no later stage ran: a partial `dvc repro`, or one that stopped "
                      "before the next stage's run began). `reused` (where a pipeline has one): the stages DVC "
                      "skipped because their inputs had not changed, whose results (and metrics here) are those "
                      "of the named earlier pipeline. "
                      "Parameter columns are the keys that differ between pipelines of a task (a strategy's own "
                      "section only where its pipelines differ in it).",
                      ""] + md_table(header, rows)) + "\n"
    atomic_write_text(md_path, text)
    return text
