"""The comparison of pipelines from run-like objects (no tracking store): grouping by ednas.pipeline_id,
headline metrics, the written comparison.{md,csv}; the report package never imports MLflow."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from types import SimpleNamespace

from ednas_core.report import (comparison_table, differing_params, pipelines_from_runs, results_pipeline, used_tag,
                               write_comparison)


def fake_run(pid: str, stage: str, start: int, metrics: dict | None = None, status: str = "FINISHED",
             task: str = "cifar10", exp: str = "", params: dict | None = None) -> SimpleNamespace:
    tags = {"ednas.pipeline_id": pid, "ednas.stage": stage, "ednas.task": task, "dvc.exp_name": exp,
            "git.rev": "0123456789abcdef"}
    data = SimpleNamespace(tags=tags, metrics=metrics or {}, params=params or {"search.lr": "0.1"})
    return SimpleNamespace(info=SimpleNamespace(status=status, start_time=start, run_id=f"{pid}-{stage}-{start}"),
                           data=data)


def test_runs_are_grouped_by_pipeline_with_headline_metrics():
    runs = [fake_run("p1", "search", 2_000, {"child_acc": 0.6, "reward": 0.5, "search_cpu_hours": 0.25,
                                              "rewards_total": 158.0}),
            fake_run("p1", "search", 1_000, {"child_acc": 0.1}, status="FAILED"),
            fake_run("p1", "derive", 3_000, {"best_reward": 0.7}),
            fake_run("p1", "evaluate", 4_000, {"test_error": 2.5, "params_m": 3.3}, exp="lr-0.1"),
            fake_run("p2", "prepare-data", 5_000),  # nothing to compare
            fake_run("p3", "report", 6_000),  # the current pipeline is kept anyway
            SimpleNamespace(info=SimpleNamespace(status="FINISHED", start_time=0),
                            data=SimpleNamespace(tags={}, metrics={}, params={}))]  # not a pipeline's run
    pipelines = {p["pipeline"]: p for p in pipelines_from_runs(runs, current="p3")}
    assert set(pipelines) == {"p1", "p3"}
    p1 = pipelines["p1"]
    assert p1["search_child_acc"] == 0.6 and p1["search_reward"] == 0.5  # the finished search run
    assert p1["search_hours"] == 0.25 and p1["derive_best_reward"] == 0.7 and p1["search_rewards_total"] == 158
    assert p1["test_error"] == 2.5 and p1["params_m"] == 3.3 and math.isnan(p1["test_ppl"])
    assert p1["stages"] == "search derive evaluate" and p1["started_ms"] == 1_000
    assert p1["search_run_id"] == "p1-search-2000" and pipelines["p3"]["search_run_id"] == ""  # the finished one
    assert p1["experiment"] == "workspace" and p1["git_rev"] == "01234567" and p1["task"] == "cifar10"
    assert p1["started"] == "1970-01-01 00:00 UTC" and p1["params"] == {"search.lr": "0.1"}
    assert math.isnan(pipelines["p3"]["test_error"]) and pipelines["p3"]["stages"] == "report"
    assert math.isnan(pipelines["p3"]["search_rewards_total"])  # no search: nothing scored


def test_status_column_tells_finished_running_failed_and_killed_pipelines_apart(tmp_path):
    """A pipeline killed mid-search (`dvc queue kill`) keeps the metrics its search logged: without the status
    its row read like a finished search's."""
    runs = [fake_run("done", "search", 1, {"child_acc": 0.6}), fake_run("done", "evaluate", 2, {"test_error": 3.0}),
            fake_run("live", "search", 3, {"child_acc": 0.4}, status="RUNNING"),
            fake_run("bad", "search", 4), fake_run("bad", "derive", 5, status="FAILED"),
            fake_run("cut", "prepare-data", 6), fake_run("cut", "search", 7, {"child_acc": 0.57}, status="KILLED"),
            fake_run("again", "search", 8, status="KILLED"), fake_run("again", "search", 9),  # resumed, finished
            fake_run("again", "derive", 10), fake_run("again", "evaluate", 11), fake_run("again", "report", 12),
            fake_run("cut2", "search", 13), fake_run("cut2", "derive", 14)]  # then stopped before evaluate's run
    header, rows = comparison_table(pipelines_from_runs(runs), "cifar10")
    status = {row[0]: dict(zip(header, row))["status"] for row in rows}
    assert status == {"done": "finished", "live": "running", "bad": "failed at derive", "cut": "killed at search",
                      "again": "finished", "cut2": "stopped after derive"}
    text = write_comparison(header, rows, tmp_path / "comparison.md", tmp_path / "comparison.csv")
    assert "| killed at search |" in text and "`status`" in text


def test_write_comparison_leaves_nan_empty(tmp_path):
    runs = [fake_run("a", "evaluate", 1, {"test_error": 3.0}, params={"search.lr": "0.1"}),
            fake_run("b", "search", 2, {"child_acc": 0.5}, params={"search.lr": "0.2"})]
    header, rows = comparison_table(pipelines_from_runs(runs), "cifar10", current="b")
    text = write_comparison(header, rows, tmp_path / "comparison.md", tmp_path / "comparison.csv")
    assert (tmp_path / "comparison.md").read_text() == text
    assert text.startswith("# EDNAS pipelines in the tracking store\n")
    with open(tmp_path / "comparison.csv", newline="") as f:
        written = list(csv.DictReader(f))
    assert [r["pipeline"] for r in written] == ["a", "b"]
    assert written[0]["test_error"] == "3.0" and written[1]["test_error"] == ""
    assert written[1]["this"] == "yes" and written[1]["search.lr"] == "0.2"
    assert "| a | cifar10 |" in text and "| - |" in text


def test_a_strategy_section_is_a_column_only_where_that_strategys_pipelines_differ_in_it():
    """Only a nao run logs search.nao.*: beside an ednas run, a nao key that every nao run shares says nothing the
    strategy column does not (27 such columns made the table unreadable); one that two nao runs differ in is
    shown, as is a key that pipelines of one strategy differ in having (a key added by a later version)."""
    nao = {"search.strategy": "nao", "search.lr": "0.05", "search.nao.epochs": "100", "tracking.progress": "bar"}
    runs = [fake_run("e1", "search", 1, params={"search.strategy": "ednas", "search.lr": "0.05"}),
            fake_run("e2", "search", 2, params={"search.strategy": "ednas", "search.lr": "0.05", "search.new": "1"}),
            fake_run("n1", "search", 3, params={**nao, "search.nao.top_k": "20"}),
            fake_run("n2", "search", 4, params={**nao, "search.nao.top_k": "50", "tracking.progress": "lines"}),
            fake_run("v1", "search", 5, params={"search.strategy": "evnas", "search.lr": "0.05",
                                                "search.evnas.population": "50"})]
    pipelines = pipelines_from_runs(runs)
    assert differing_params(pipelines) == ["search.nao.top_k", "search.new"]  # search.strategy: the strategy column
    header, _ = comparison_table(pipelines, "cifar10")
    assert "search.nao.epochs" not in header and "search.evnas.population" not in header and "strategy" in header
    # the same keys in two tasks: each task's pipelines are compared among themselves
    digits = [fake_run("d1", "search", 6, task="digits", params={"digits.search.strategy": "nao",
                                                                 "digits.search.nao.epochs": "5"}),
              fake_run("d2", "search", 7, task="digits", params={"digits.search.strategy": "nao",
                                                                 "digits.search.nao.epochs": "9"})]
    assert "digits.search.nao.epochs" in differing_params(pipelines_from_runs(runs + digits))


def _reporting(pid: str, start: int, used: dict, **kw) -> SimpleNamespace:
    """A pipeline's report run naming the stage runs whose results it reported (as the report stage tags it)."""
    run = fake_run(pid, "report", start, **kw)
    run.data.tags.update({used_tag(stage): run_id for stage, run_id in used.items()})
    return run


def test_a_stage_that_dvc_skipped_is_reused_from_the_pipeline_its_report_names():
    """`dvc exp run` skips a stage whose inputs did not change: a search that derives the same cell as the last
    pipeline's keeps that pipeline's evaluation, an ablation of evaluate's settings keeps its search and derive.
    Such a pipeline's row shows the reused runs' metrics and says where they came from; its own runs give its
    params, stages and status."""
    base = {"search.lr": "0.1", "evaluate.epochs": "600"}
    first = [fake_run("p1", "search", 1, {"child_acc": 0.6}, params=base),
             fake_run("p1", "derive", 2, {"best_reward": 0.7}, params=base),
             fake_run("p1", "evaluate", 3, {"test_error": 2.5, "params_m": 3.3}, params=base)]
    first.append(_reporting("p1", 4, {s: f"p1-{s}-{t}" for s, t in (("search", 1), ("derive", 2), ("evaluate", 3))},
                            params=base))
    same_cell = {**base, "search.lr": "0.2"}
    second = [fake_run("p2", "search", 5, {"child_acc": 0.65}, params=same_cell, exp="lr-0.2"),
              fake_run("p2", "derive", 6, {"best_reward": 0.72}, params=same_cell, exp="lr-0.2"),
              _reporting("p2", 7, {"search": "p2-search-5", "derive": "p2-derive-6", "evaluate": "p1-evaluate-3"},
                         params=same_cell, exp="lr-0.2")]
    longer = {**base, "evaluate.epochs": "900"}
    third = [fake_run("p3", "evaluate", 8, {"test_error": 2.1, "params_m": 3.3}, params=longer),
             _reporting("p3", 9, {"search": "p1-search-1", "derive": "p1-derive-2", "evaluate": "p3-evaluate-8"},
                        params=longer, exp="epochs-900")]
    # a report refreshed at another revision: a pipeline in which no stage ran is not a row (results_pipeline)
    refreshed = [_reporting("p4", 10, {"search": "p1-search-1", "derive": "p1-derive-2", "evaluate": "p1-evaluate-3"},
                            params=base)]
    # a report that failed names nothing it reported
    failed = [fake_run("p5", "search", 11, {"child_acc": 0.5}, params={**base, "search.lr": "0.3"}),
              _reporting("p5", 12, {"evaluate": "p1-evaluate-3"}, params={**base, "search.lr": "0.3"},
                         status="FAILED")]
    runs = first + second + third + refreshed + failed
    pipelines = {p["pipeline"]: p for p in pipelines_from_runs(runs)}
    assert set(pipelines) == {"p1", "p2", "p3", "p5"}
    p1, p2, p3, p5 = (pipelines[k] for k in ("p1", "p2", "p3", "p5"))
    assert p1["reused"] == "" and p1["test_error"] == 2.5
    assert p2["reused"] == "evaluate of p1" and p2["test_error"] == 2.5 and p2["params_m"] == 3.3
    assert p2["search_child_acc"] == 0.65 and p2["derive_best_reward"] == 0.72
    assert p2["stages"] == "search derive report"
    assert p2["status"] == "finished" and p2["params"] == same_cell and p2["experiment"] == "lr-0.2"
    assert p3["reused"] == "search of p1, derive of p1" and p3["search_child_acc"] == 0.6
    assert p3["derive_best_reward"] == 0.7 and p3["test_error"] == 2.1 and p3["params"] == longer
    assert p3["stages"] == "evaluate report" and p3["search_run_id"] == "p1-search-1"
    assert p5["reused"] == "" and math.isnan(p5["test_error"]) and p5["status"] == "failed at report"
    header, rows = comparison_table(list(pipelines.values()), "cifar10", current="p2")
    table = {row[0]: dict(zip(header, row)) for row in rows}
    assert header.index("reused") == header.index("status") + 1
    assert table["p2"]["reused"] == "evaluate of p1" and table["p2"]["this"] == "yes"
    header, _ = comparison_table([p1], "cifar10")
    assert "reused" not in header  # only where some pipeline reused a stage
    assert results_pipeline(runs, ["p1-evaluate-3"], "p2") == "p2"  # it ran a stage: its report is about it
    assert results_pipeline(runs, ["p1-evaluate-3"], "p4") == "p1"  # nothing ran in it: the results' pipeline


def test_report_package_does_not_import_mlflow():
    code = ("import sys, ednas_core.report; "
            "sys.exit(any(m == 'mlflow' or m.startswith('mlflow.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
