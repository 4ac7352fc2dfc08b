"""The study across seeds from run-like objects (no tracking store): grouping by everything but the seed, mean and
sample std by hand, failed and incomplete pipelines kept, the parent run ignored, the written study.{md,csv,png}."""

from __future__ import annotations

import csv
import io
import math
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import matplotlib.axes
from matplotlib.image import imread

from ednas_core.report.comparison import pipelines_from_runs
from ednas_core.report.seed_study import (Summary, build_study, study_figure_png, study_groups, study_params,
                                          write_study)

BASE = {"search.lr": "0.05", "search.strategy": "ednas", "runtime.amp": "true", "runtime.device": "auto",
        "tracking.progress": "auto", "digits.search.lr": "0.1"}


def fake_run(pid: str, stage: str, start: int, metrics: dict | None = None, status: str = "FINISHED",
             task: str = "cifar10", params: dict | None = None, error: str = "") -> SimpleNamespace:
    tags = {"ednas.pipeline_id": pid, "ednas.stage": stage, "ednas.task": task, "dvc.exp_name": f"exp-{pid}",
            "git.rev": "0123456789abcdef"}
    if error:
        tags["error"] = error
    data = SimpleNamespace(tags=tags, metrics=metrics or {}, params=params or {})
    return SimpleNamespace(info=SimpleNamespace(status=status, start_time=start, run_id=f"{pid}-{stage}-{start}"),
                           data=data)


def pipeline_runs(pid: str, params: dict, error: float | None, params_m: float, hours: float, task: str = "cifar10",
                  metric: str = "test_error", start: int = 0) -> list[SimpleNamespace]:
    runs = [fake_run(pid, "search", start + 1, {"child_acc": 0.5, "search_gpu_hours": hours, "rewards_total": 23700.0},
                     task=task, params=params),
            fake_run(pid, "derive", start + 2, {"best_reward": 0.6}, task=task, params=params)]
    if error is not None:
        runs.append(fake_run(pid, "evaluate", start + 3, {metric: error, "params_m": params_m}, task=task,
                             params=params))
    return runs


# (strategy, seed) -> (test error, params in millions, search GPU-hours)
RESULTS = {("ednas", 1): (2.9, 3.5, 6.0), ("ednas", 2): (3.0, 3.6, 7.0), ("ednas", 3): (3.4, 3.7, 8.0),
           ("random", 1): (3.6, 3.0, 5.0), ("random", 2): (3.8, 3.0, 5.0), ("random", 3): (4.3, 3.0, 5.0)}


def study_runs() -> list[SimpleNamespace]:
    """3 seeds x 2 strategies, a failed ednas seed, an unfinished random seed, a search retried after a failure,
    and the parent run of the pipeline ednas-1 (KILLED, with a metric of its own)."""
    runs = []
    for k, ((strategy, seed), (error, params_m, hours)) in enumerate(RESULTS.items()):
        params = {**BASE, "search.strategy": strategy, "runtime.seed": str(seed),
                  "runtime.device": f"cuda:{seed}", "tracking.progress": ["bar", "lines"][seed % 2]}
        runs += pipeline_runs(f"{strategy}-{seed}", params, error, params_m, hours, start=10 * k)
    # search failed once, then finished on the rerun: not a failure
    runs.append(fake_run("ednas-2", "search", 0, status="FAILED", params={**BASE, "runtime.seed": "2"},
                         error="RuntimeError: CUDA out of memory"))
    failed = {**BASE, "runtime.seed": "4"}
    runs += pipeline_runs("ednas-4", failed, None, 0.0, 6.5, start=100)
    runs.append(fake_run("ednas-4", "evaluate", 103, {"test_error": 90.0}, status="FAILED", params=failed,
                         error="FloatingPointError: loss is nan at epoch 3"))
    unfinished = {**BASE, "search.strategy": "random", "runtime.seed": "4"}
    runs.append(fake_run("random-4", "search", 200, status="RUNNING", params=unfinished))
    runs.append(fake_run("ednas-1", "pipeline", 0, {"test_error": 50.0}, status="KILLED", params=BASE,
                         error="evaluate: KeyboardInterrupt"))
    return runs


def by_strategy(groups):
    return {g.strategy: g for g in groups}


def test_three_seeds_of_two_strategies_give_two_groups_with_mean_and_sample_std():
    groups = study_groups(pipelines_from_runs(study_runs()))
    assert [g.strategy for g in groups] == ["ednas", "random"]
    ednas, random = groups
    assert ednas.seeds == ["1", "2", "3"] and random.seeds == ["1", "2", "3"]
    # ednas: 2.9 3.0 3.4 -> mean 3.1, squared deviations .04 .01 .09 -> var .14 / 2 = .07
    error = ednas.summary("test_error")
    assert (error.n, error.min, error.max) == (3, 2.9, 3.4)
    assert error.mean == pytest.approx(3.1) and error.std == pytest.approx(math.sqrt(0.07))
    # random: 3.6 3.8 4.3 -> mean 3.9, squared deviations .09 .01 .16 -> var .26 / 2 = .13
    error = random.summary("test_error")
    assert error.mean == pytest.approx(3.9) and error.std == pytest.approx(math.sqrt(0.13))
    assert ednas.summary("params_m").mean == pytest.approx(3.6) and ednas.summary("params_m").std == pytest.approx(0.1)
    assert ednas.summary("search_hours").mean == pytest.approx(7.0)
    assert ednas.summary("search_hours").std == pytest.approx(1.0)
    assert random.summary("search_hours").std == 0.0
    # the failed seed is kept and listed with its error; the running one is incomplete
    assert [p["pipeline"] for p in ednas.failed] == ["ednas-4"] and not ednas.incomplete
    assert ednas.failed[0]["failed_stage"] == "evaluate"
    assert ednas.failed[0]["error"] == "FloatingPointError: loss is nan at epoch 3"
    assert [p["pipeline"] for p in random.incomplete] == ["random-4"] and not random.failed
    assert ednas.distinguishing == {} and random.distinguishing == {}  # only the strategy differs
    assert ednas.paper["test_error"] == 2.84 and random.paper["test_error"] == 3.91  # each strategy's own row


def test_pipeline_status_ignores_the_parent_run_and_a_failure_rerun():
    pipelines = {p["pipeline"]: p for p in pipelines_from_runs(study_runs())}
    assert pipelines["ednas-1"]["status"] == "finished" and pipelines["ednas-1"]["test_error"] == 2.9
    assert pipelines["ednas-2"]["status"] == "finished" and pipelines["ednas-2"]["error"] == ""
    assert pipelines["ednas-4"]["status"] == "failed at evaluate"
    assert pipelines["random-4"]["status"] == "running"
    assert "pipeline" not in pipelines["ednas-1"]["stages"].split()


def test_a_pipeline_that_failed_in_prepare_data_is_kept():
    runs = [fake_run("p", "prepare-data", 1, status="FAILED", error="DataError: cifar-10 not found",
                     params={**BASE, "runtime.seed": "5"}),
            fake_run("q", "prepare-data", 2, params={**BASE, "runtime.seed": "6"})]  # finished: nothing to compare
    pipelines = pipelines_from_runs(runs)
    assert [(p["pipeline"], p["status"], p["error"]) for p in pipelines] == [
        ("p", "failed at prepare-data", "DataError: cifar-10 not found")]
    (group,) = study_groups(pipelines)
    assert group.summary("test_error").n == 0 and len(group.failed) == 1


def test_grouping_ignores_the_seed_and_execution_keys_but_splits_on_the_learning_rate():
    runs = []
    for k, (lr, seed, error) in enumerate([("0.05", 1, 3.0), ("0.05", 2, 3.2), ("0.1", 1, 4.0), ("0.1", 2, 4.4)]):
        params = {**BASE, "search.lr": lr, "runtime.seed": str(seed), "runtime.device": f"cuda:{k}",
                  "runtime.compile": str(k % 2 == 0).lower(), "tracking.heatmap_every": str(k),
                  "digits.search.lr": str(k)}  # another task's key: not a cifar10 setting
        runs += pipeline_runs(f"p{k}", params, error, 3.0, 1.0, start=10 * k)
    groups = study_groups(pipelines_from_runs(runs))
    assert [g.distinguishing for g in groups] == [{"search.lr": "0.05"}, {"search.lr": "0.1"}]
    assert [g.summary("test_error").mean for g in groups] == [pytest.approx(3.1), pytest.approx(4.2)]
    assert [g.seeds for g in groups] == [["1", "2"], ["1", "2"]]
    kept = study_params("cifar10", {**BASE, "runtime.seed": "1", "data.root": "/x", "ptb.search.lr": "20"})
    assert kept == {"search.lr": "0.05", "search.strategy": "ednas", "runtime.amp": "true"}
    assert "search.lr" not in study_params("digits", BASE) and "digits.search.lr" in study_params("digits", BASE)


def test_a_strategy_section_distinguishes_only_groups_of_that_strategy():
    """nao groups carry search.nao.*, the ednas group none: the nao key both nao groups share is no column; the
    one they differ in is, and the ednas group's value of it is empty."""
    runs, k = [], 0
    for strategy, section in (("ednas", {}), ("nao", {"search.nao.epochs": "100", "search.nao.top_k": "20"}),
                              ("nao", {"search.nao.epochs": "100", "search.nao.top_k": "50"})):
        for seed in (1, 2):
            params = {**BASE, "search.strategy": strategy, "runtime.seed": str(seed), **section}
            runs += pipeline_runs(f"p{k}", params, 3.0 + k, 3.0, 1.0, start=10 * k)
            k += 1
    groups = study_groups(pipelines_from_runs(runs))
    assert [(g.strategy, g.distinguishing) for g in groups] == [
        ("ednas", {"search.nao.top_k": ""}), ("nao", {"search.nao.top_k": "20"}), ("nao", {"search.nao.top_k": "50"})]
    assert [g.seeds for g in groups] == [["1", "2"]] * 3


def test_each_strategys_group_shows_its_own_published_numbers(tmp_path, monkeypatch):
    """A study comparing strategies reads each against its own paper (report/paper.py): NAO against NAONet-WS,
    EvNAS against EvNAS-A (no published search cost), REA against nothing; the figure draws each such value once
    over its groups, beside the EDNAS paper's line."""
    runs, k = [], 0
    for strategy, section in (("ednas", {}), ("evnas", {}), ("nao", {"search.nao.top_k": "20"}),
                              ("nao", {"search.nao.top_k": "50"}), ("rea", {})):
        params = {**BASE, "search.strategy": strategy, "runtime.seed": "1", **section}
        runs += pipeline_runs(f"p{k}", params, 3.0 + k, 3.0, 1.0, start=10 * k)
        k += 1
    study = build_study(pipelines_from_runs(runs))
    header, rows = study.table()
    published = {(row[1], row[2]): row[-1] for row in rows}
    assert published == {("ednas", ""): "EDNAS: 2.84 · 3.7M · 0.28 GPU-days",
                         ("evnas", ""): "EvNAS-A: 2.4 · 3.6M · -",
                         ("nao", "20"): "NAONet-WS: 3.53 · 2.5M · 0.3 GPU-days",
                         ("nao", "50"): "NAONet-WS: 3.53 · 2.5M · 0.3 GPU-days", ("rea", ""): "-"}
    assert [g.label for g in study.groups] == [  # the figure's ticks: no 'search.nao.top_k=' under ednas
        "ednas", "evnas", "nao\nsearch.nao.top_k=20", "nao\nsearch.nao.top_k=50", "rea"]
    legends = []
    real_legend = matplotlib.axes.Axes.legend
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda ax, *a, **kw: (
        legends.append(ax.get_legend_handles_labels()[1]), real_legend(ax, *a, **kw))[1])
    assert study_figure_png(study)[:4] == b"\x89PNG"
    assert legends == [["EvNAS-A paper: 2.4", "NAONet-WS paper: 3.53", "EDNAS paper: 2.84"]]


def test_nb201_groups_show_the_benchmarks_row_of_their_mode(tmp_path, monkeypatch):
    """On nb201 a group reads against NAS-Bench-201's own row of its strategy's counterpart in its search mode, as
    a test error with its std: tabular REA, REINFORCE (EDNAS) and random search; weight-sharing ENAS; nothing for
    the others (EvNAS, NAO, EDNAS with weight sharing). The figure draws each such value, EDNAS's too (the EDNAS
    paper has no nb201 line)."""
    runs, k = [], 0
    for mode, strategies in (("tabular", ("ednas", "enas", "evnas", "nao", "random", "rea")),
                             ("weight_sharing", ("ednas", "enas"))):
        for strategy in strategies:
            params = {"nb201.search.strategy": strategy, "nb201.search.mode": mode, "runtime.seed": "1",
                      "search.lr": "0.05"}
            runs += pipeline_runs(f"p{k}", params, 6.0 + k / 10, 1.0, 0.01, task="nb201", start=10 * k)
            k += 1
    study = build_study(pipelines_from_runs(runs))
    header, rows = study.table()
    published = {(row[1], row[2]): row[-1] for row in rows}
    assert published == {
        ("ednas", "tabular"): "NB201 REINFORCE (tabular): 6.15 ± 0.37", ("enas", "tabular"): "-",
        ("evnas", "tabular"): "-", ("nao", "tabular"): "-",
        ("random", "tabular"): "NB201 random search (tabular): 6.3 ± 0.36",
        ("rea", "tabular"): "NB201 REA (tabular): 6.08 ± 0.3",
        ("ednas", "weight_sharing"): "-", ("enas", "weight_sharing"): "NB201 ENAS (weight sharing): 45.7"}
    write_study(study, tmp_path / "study.md", tmp_path / "study.csv", tmp_path / "study.png")
    with open(tmp_path / "study.csv", newline="") as f:
        csv_rows = {(r["strategy"], r["nb201.search.mode"]): r for r in csv.DictReader(f)}
    rea = csv_rows[("rea", "tabular")]
    assert (rea["paper_method"], rea["paper_result"], rea["paper_result_std"], rea["paper_params_m"]) == (
        "NB201 REA (tabular)", "6.08", "0.3", "")
    enas = csv_rows[("enas", "weight_sharing")]
    assert (enas["paper_result"], enas["paper_result_std"]) == ("45.7", "")
    assert csv_rows[("nao", "tabular")]["paper_method"] == ""
    legends = []
    real_legend = matplotlib.axes.Axes.legend
    monkeypatch.setattr(matplotlib.axes.Axes, "legend", lambda ax, *a, **kw: (
        legends.append(ax.get_legend_handles_labels()[1]), real_legend(ax, *a, **kw))[1])
    assert study_figure_png(study)[:4] == b"\x89PNG"
    assert legends == [["NB201 REINFORCE (tabular) paper: 6.15", "NB201 ENAS (weight sharing) paper: 45.7",
                        "NB201 random search (tabular) paper: 6.3", "NB201 REA (tabular) paper: 6.08"]]


def test_ptb_groups_use_perplexity_and_the_papers_ptb_row():
    runs = []
    for seed, ppl in ((1, 60.0), (2, 62.0)):
        params = {"ptb.search.strategy": "ednas", "ptb.search.lr": "20", "runtime.seed": str(seed),
                  "search.lr": str(seed)}  # CIFAR-10's key: ignored for ptb
        runs += pipeline_runs(f"ptb-{seed}", params, ppl, 23.0, 2.4, task="ptb", metric="test_ppl", start=seed)
    (group,) = study_groups(pipelines_from_runs(runs))
    assert group.metric == "test_ppl" and group.summary("test_ppl").mean == pytest.approx(61.0)
    assert group.summary("test_ppl").std == pytest.approx(math.sqrt(2.0))  # (1 + 1) / 1
    assert group.summary("test_error").n == 0
    header, rows = build_study(pipelines_from_runs(runs)).table()
    row = dict(zip(header, rows[0]))
    assert row["metric"] == "test perplexity" and row["mean ± std"] == "61 ± 1.4" and row["min / max"] == "60 / 62"
    assert row["published (method: result · params · search)"] == "EDNAS: 59.45 · 23M · 0.11 GPU-days"


def test_one_seed_has_no_std():
    summary = Summary.of([2.5])
    assert summary.n == 1 and math.isnan(summary.std) and summary.mean_std() == "2.5 ± -"
    assert Summary.of([]).mean_std() == "-" and Summary.of([math.nan, 1.0]).n == 1


def test_write_study_md_csv_and_a_real_png(tmp_path):
    study = build_study(pipelines_from_runs(study_runs()))
    text = write_study(study, tmp_path / "study.md", tmp_path / "study.csv", tmp_path / "figures" / "study.png")
    assert (tmp_path / "study.md").read_text() == text and text.startswith("# Study across seeds\n")
    # ednas against random on the same settings: 3.1 - 3.9 = -0.8; every ednas seed below every random one, the
    # exact two-sided p of 3 against 3 is 2 / C(6, 3) = 0.1
    assert "| cifar10 | ednas | 3 | 1 2 3 | 1 | 0 | test error (%) | 3.1 ± 0.26 | 2.9 / 3.4 | -0.8 (p 0.1, 3 vs 3) | " \
           "3.6 ± 0.1 | 7 ± 1 | 23700 ± 0 | EDNAS: 2.84 · 3.7M · 0.28 GPU-days |" in text  # rewards whole, not 2.37e+04
    assert "| cifar10 | random | 3 | 1 2 3 | 0 | 1 | test error (%) | 3.9 ± 0.36 | 3.6 / 4.3 | - | 3 ± 0 | 5 ± 0 | " \
           "23700 ± 0 | random search: 3.91 · 3.4M · 0.27 GPU-days |" in text
    assert "| cifar10 | ednas | ednas-4 | exp-ednas-4 | 4 | evaluate | FloatingPointError: loss is nan at epoch 3 |" \
           in text
    assert "](figures/study.png)" in text
    with open(tmp_path / "study.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["strategy"], r["n"], r["seeds"], r["failed"], r["incomplete"]) for r in rows] == [
        ("ednas", "3", "1 2 3", "1", "0"), ("random", "3", "1 2 3", "0", "1")]
    assert float(rows[0]["mean"]) == pytest.approx(3.1) and float(rows[0]["std"]) == pytest.approx(math.sqrt(0.07))
    assert float(rows[1]["max"]) == 4.3 and float(rows[0]["search_hours_std"]) == pytest.approx(1.0)
    assert float(rows[0]["search_rewards_total_mean"]) == 23700.0
    assert float(rows[0]["vs_random_diff"]) == pytest.approx(-0.8) and float(rows[0]["vs_random_p"]) == 0.1
    assert rows[0]["vs_random_n"] == "3" and rows[1]["vs_random_diff"] == rows[1]["vs_random_p"] == ""
    assert [(r["paper_method"], r["paper_result"]) for r in rows] == [("EDNAS", "2.84"), ("random search", "3.91")]
    png = (tmp_path / "figures/study.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(io.BytesIO(png), format="png")
    assert image.shape[0] > 300 and image.shape[1] > 300 and image.std() > 0.01  # drawn, not blank


def test_an_empty_study_still_writes(tmp_path):
    study = build_study([])
    text = write_study(study, tmp_path / "study.md", tmp_path / "study.csv", tmp_path / "study.png")
    assert "(no pipelines recorded yet)" in text and "](study.png)" in text
    assert (tmp_path / "study.png").read_bytes()[:4] == b"\x89PNG"


def test_seed_study_does_not_import_mlflow():
    code = ("import sys, ednas_core.report.seed_study; "
            "sys.exit(any(m == 'mlflow' or m.startswith('mlflow.') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_a_seed_run_twice_counts_once_with_its_latest_run():
    """The same setting and seed rerun (after a code change, or `dvc repro -f`) is not a second replicate."""
    from ednas_core.report.seed_study import build_study

    def pipeline(seed: int, error: float, started: int) -> dict:
        return {"pipeline": f"p{seed}-{started}", "task": "digits", "strategy": "ednas", "started_ms": started,
                "test_error": error, "params_m": 0.1, "search_hours": 0.01, "failed_stage": "",
                "params": {"runtime.seed": str(seed), "digits.search.strategy": "ednas"}}

    study = build_study([pipeline(1, 2.0, 10), pipeline(1, 4.0, 20), pipeline(2, 6.0, 15)], "digits")
    [group] = study.groups
    assert group.seeds == ["1", "2"]
    summary = group.summary("test_error")
    assert (summary.n, summary.mean) == (2, 5.0)  # seed 1's latest (4.0) and seed 2 (6.0)


def _pipeline(strategy: str, seed: int, error: float, task: str = "cifar10", **params: str) -> dict:
    key = "search.strategy" if task == "cifar10" else f"{task}.search.strategy"
    return {"pipeline": f"{strategy}-{seed}-{error}", "task": task, "strategy": strategy, "started_ms": seed,
            "test_error": error, "params_m": 1.0, "search_hours": 1.0, "search_rewards_total": 10.0,
            "failed_stage": "", "params": {"runtime.seed": str(seed), key: strategy, "search.lr": "0.05", **params}}


def _versus(groups, strategy: str, **params: str):
    [group] = [g for g in groups if g.strategy == strategy and all(g.params.get(k) == v for k, v in params.items())]
    return group.versus_control()


def test_each_strategy_is_tested_against_random_search_on_the_same_settings():
    """The control of a group is the random group that differs from it in the strategy alone: what a strategy
    alone reads (its section, EDNAS's policy keys) does not matter, a setting of the search itself does."""
    pipelines = []
    for seed in (1, 2, 3, 4):
        pipelines += [_pipeline("random", seed, 5.0 + seed / 10),                       # 5.1 .. 5.4
                      _pipeline("random", seed, 7.0 + seed / 10, **{"search.lr": "0.1"}),
                      _pipeline("ednas", seed, 4.0 + seed / 10, **{"search.policy_lr": "0.01"}),
                      _pipeline("nao", seed, 5.0 + seed / 10 + (0.05 if seed % 2 else -0.05),
                                **{"search.nao.epochs": "100"}),
                      _pipeline("enas", seed, 6.0 + seed / 10, **{"search.lr": "0.1"})]
    pipelines.append(_pipeline("evnas", 1, 5.0, **{"search.lr": "0.2"}))  # no random search at lr 0.2
    groups = study_groups(pipelines)
    ednas = _versus(groups, "ednas")
    assert (ednas.diff, ednas.n, ednas.n_control) == (pytest.approx(-1.0), 4, 4)
    assert ednas.p == pytest.approx(2 / 70)  # every ednas seed below every random one: 2 / C(8, 4)
    assert ednas.text() == "-1 (p 0.029, 4 vs 4)"
    nao = _versus(groups, "nao")  # 5.15 5.15 5.35 5.35 against 5.1 5.2 5.3 5.4: no difference
    assert nao.diff == pytest.approx(0.0, abs=1e-12) and nao.p > 0.5
    enas = _versus(groups, "enas")  # against random at its own child learning rate 0.1: 6.x against 7.x
    assert enas.diff == pytest.approx(-1.0) and enas.p == pytest.approx(2 / 70)
    assert _versus(groups, "evnas") is None and _versus(groups, "random", **{"search.lr": "0.05"}) is None


def test_one_seed_a_side_gives_a_difference_without_p_and_an_ambiguous_control_none():
    groups = study_groups([_pipeline("ednas", 1, 3.0), _pipeline("random", 1, 4.0)])
    versus = _versus(groups, "ednas")
    assert versus.diff == -1.0 and math.isnan(versus.p) and versus.text() == "-1 (p -, 1 vs 1)"
    # two random groups that differ only in a key random search reads for tracking alone: which is the control?
    groups = study_groups([_pipeline("ednas", 1, 3.0), _pipeline("random", 1, 4.0),
                           _pipeline("random", 2, 4.5, **{"search.baseline_decay": "0.9"})])
    assert _versus(groups, "ednas") is None
    # the control has no finished seed yet
    unfinished = _pipeline("random", 1, math.nan)
    assert _versus(study_groups([_pipeline("ednas", 1, 3.0), unfinished]), "ednas") is None


def test_a_task_prefix_and_another_tasks_random_search():
    """digits groups find digits' random search; a cifar10 random group with the same values is no control."""
    groups = study_groups([_pipeline("ednas", 1, 3.0, task="digits", **{"digits.search.policy_lr": "0.1"}),
                           _pipeline("ednas", 2, 3.2, task="digits"),
                           _pipeline("random", 1, 4.0, task="digits"), _pipeline("random", 2, 4.4, task="digits"),
                           _pipeline("random", 1, 1.0)])
    assert [(g.task, g.strategy) for g in groups if g.versus_control()] == [("digits", "ednas"), ("digits", "ednas")]
    digits = [g for g in groups if g.task == "digits" and g.strategy == "ednas" and g.params.get(
        "digits.search.policy_lr") is None][0]
    assert digits.versus_control().diff == pytest.approx(3.2 - 4.2)


def _nb201(strategy: str, seed: int, error: float) -> dict:
    pipeline = _pipeline(strategy, seed, error, task="nb201", **{"nb201.search.mode": "tabular"})
    return {**pipeline, "search_run_id": f"run-{strategy}-{seed}"}


def test_nb201_curves_are_each_groups_mean_and_std_across_seeds_per_epoch(tmp_path):
    study = build_study([_nb201("ednas", 1, 6.0), _nb201("ednas", 2, 6.2), _nb201("rea", 1, 5.9),
                         _pipeline("ednas", 1, 3.0)])  # cifar10: no curves
    assert study.curve_keys() == ["answer_test_acc", "best_test_acc"]
    assert sorted(study.curve_runs()) == ["run-ednas-1", "run-ednas-2", "run-rea-1"]
    study.curves = {"run-ednas-1": {"answer_test_acc": [(1, 90.0), (2, 92.0), (3, 93.0)]},
                    "run-ednas-2": {"answer_test_acc": [(1, 88.0), (2, math.nan)]},  # NaN: not a value
                    "run-rea-1": {"best_test_acc": [(1, 93.5)]}}
    ednas = next(g for g in study.groups if g.task == "nb201" and g.strategy == "ednas")
    epochs, mean, std, seeds = study.group_curve(ednas, "answer_test_acc")
    assert epochs.tolist() == [1, 2, 3] and mean.tolist() == [89.0, 92.0, 93.0] and seeds.tolist() == [2, 1, 1]
    assert std[0] == pytest.approx(math.sqrt(2.0)) and np.isnan(std[1:]).all()
    assert len(study.group_curve(ednas, "best_test_acc")[0]) == 0

    paths = [tmp_path / name for name in ("study.md", "study.csv", "study.png", "study_curves.png")]
    text = write_study(study, *paths[:3], curves_path=paths[3])
    png = paths[3].read_bytes()
    image = imread(io.BytesIO(png), format="png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[1] > 2 * image.shape[0]  # two panels side by side
    assert "](study_curves.png)" in text and "mean of its seeds" in text

    # a study without curves writes none and removes one an earlier study left
    text = write_study(build_study([_pipeline("ednas", 1, 3.0)]), *paths[:3], curves_path=paths[3])
    assert not paths[3].exists() and "study_curves" not in text
