"""The report stage end to end (main() in a temporary working directory with fake metrics files, a fake policy
history and a temporary SQLite MLflow store holding several pipelines): report.md/.html, figures, comparison."""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from ednas_core.config import Params
from ednas_core.genotypes import PAPER_GENOTYPES, save_genotype
from ednas_core.report import Figures, build_report, comparison_table, main_metric
from stages import report as report_stage
from stages.common import flat_params
from tools.workspace import PROJECT, set_params

EPOCHS = 4
# as the stages write them: headline numbers in metrics/<stage>.json, the rest in metrics/info/<stage>.json
SEARCH = {"child_acc": 0.5432, "entropy": 60.5}
SEARCH_INFO = {"epochs": EPOCHS, "first_epoch_child_acc": 0.2109, "child_loss": 0.91, "reward": 0.4321,
               "baseline": 0.4012, "search_cpu_hours": 0.0123, "device": "cpu", "mlflow_run_id": "searchrun00001"}
DERIVE = {"best_reward": 0.6543}
DERIVE_INFO = {"mode": "best", "samples": 10, "distinct_samples": 9, "argmax_reward": 0.5, "chosen_reward": 0.6543,
               "mean_reward": 0.41, "scored_on_images": 64, "mlflow_run_id": "deriverun00002"}
EVALUATE = {"test_error": 1.23, "params": 12345}
EVALUATE_INFO = {"genotype": "derived", "epochs": 3, "test_acc": 0.9877, "params_m": 0.012345,
                 "train_cpu_hours": 0.02, "device": "cpu", "mlflow_run_id": "evalrun00003"}
# what the report reads: both merged
SEARCH_ALL, DERIVE_ALL, EVALUATE_ALL = ({**m, **i} for m, i in ((SEARCH, SEARCH_INFO), (DERIVE, DERIVE_INFO),
                                                               (EVALUATE, EVALUATE_INFO)))

# (experiment name, digits.search.lr, test error or None when evaluate never ran, stages that ran)
PIPELINES = [("lr-0.05", "0.05", 2.0, ("search", "derive", "evaluate")),
             ("lr-0.2", "0.2", 0.5, ("search", "derive", "evaluate")),
             ("", "0.1", 1.0, ("prepare-data", "search", "derive", "evaluate")),
             ("unfinished", "0.3", None, ("search",)),
             ("prepare-only", "0.4", None, ("prepare-data",))]


def write_inputs(root: Path) -> None:
    shutil.copy(PROJECT / "params.yaml", root / "params.yaml")
    set_params(root / "params.yaml", {"task": "digits"})
    metrics = root / "metrics"
    (metrics / "info").mkdir(parents=True)
    for name, data, info in (("search", SEARCH, SEARCH_INFO), ("derive", DERIVE, DERIVE_INFO),
                             ("evaluate", EVALUATE, EVALUATE_INFO)):
        (metrics / f"{name}.json").write_text(json.dumps(data))
        (metrics / "info" / f"{name}.json").write_text(json.dumps(info))
    with open(metrics / "search_epochs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "child_loss", "child_acc", "reward", "baseline", "entropy"])
        for e in range(1, EPOCHS + 1):
            w.writerow([e, 2.0 / e, 0.1 * e, 0.08 * e, 0.07 * e, 64.0 - e])
    with open(metrics / "evaluate_epochs.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "train_loss", "train_acc", "test_loss", "test_acc"])
        for e in range(1, 4):
            w.writerow([e, 1.0 / e, 0.3 * e, "", 0.3 * e if e == 3 else ""])
    rng = np.random.default_rng(0)
    history = {"epoch": np.arange(1, EPOCHS + 1)}
    for cell in ("normal", "reduce"):
        logits = rng.normal(size=(EPOCHS, 14, 7))
        history[f"prob_{cell}_edge"] = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        node = np.zeros((EPOCHS, 4, 10))
        for k, n in enumerate((1, 3, 6, 10)):
            node[:, k, :n] = 1.0 / n
        history[f"prob_{cell}_node"] = node
        history[f"counts_{cell}"] = rng.integers(0, 30, size=(EPOCHS, 14, 7))
    history["metric_child_acc"] = np.linspace(0.1, 0.5, EPOCHS)
    (root / "data/search").mkdir(parents=True)
    np.savez(root / "data/search/policy_history.npz", **history)
    save_genotype(PAPER_GENOTYPES["paper-imagenet"], root / "data/derive/genotype.json")


def log_pipeline(client: MlflowClient, experiment_id: str, pid: str, task: str, exp_name: str, params: dict,
                 test_error: float | None, stages: tuple[str, ...]) -> None:
    for stage in stages:
        tags = {"ednas.pipeline_id": pid, "ednas.task": task, "ednas.stage": stage, "dvc.stage": stage,
                "dvc.exp_name": exp_name, "git.rev": "0123456789abcdef" * 2 + "01234567"}
        run = client.create_run(experiment_id, tags=tags)
        metrics = {"search": {"child_acc": 0.6, "reward": 0.55, "search_cpu_hours": 0.01},
                   "derive": {"best_reward": 0.7},
                   "evaluate": {"test_error": test_error, "params_m": 0.01}}.get(stage, {})
        now = int(time.time() * 1000)
        client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items() if v is not None],
                         params=[Param(k, str(v)) for k, v in params.items()],
                         tags=[RunTag("mlflow.runName", stage)])
        client.set_terminated(run.info.run_id, "FINISHED")


def fill_store(root: Path) -> None:
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    digits = client.create_experiment("ednas-digits", artifact_location=(root / "mlruns").as_uri())
    base = flat_params(dataclasses.replace(Params(), task="digits"))
    for k, (name, lr, error, stages) in enumerate(PIPELINES):
        log_pipeline(client, digits, f"pipe{k}", "digits", name, {**base, "digits.search.lr": lr}, error, stages)
    cifar = client.create_experiment("ednas-cifar10", artifact_location=(root / "mlruns").as_uri())
    log_pipeline(client, cifar, "pipe-cifar", "cifar10", "", flat_params(Params()), 0.1,
                 ("search", "derive", "evaluate"))


def run_report(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(root)
    monkeypatch.setenv("DVC_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    report_stage.main()


@pytest.fixture(scope="module")
def done(tmp_path_factory) -> Path:
    """One full report (figures included) over the fake inputs and the fake store."""
    root = tmp_path_factory.mktemp("report")
    write_inputs(root)
    fill_store(root)
    with pytest.MonkeyPatch.context() as mp:
        run_report(root, mp)
    return root


def comparison(root: Path) -> list[dict[str, str]]:
    with open(root / "metrics/comparison.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_writes_report_html_figures_and_comparison(done):
    metrics = done / "metrics"
    for name in ("report.md", "report.html", "comparison.md", "comparison.csv"):
        assert (metrics / name).stat().st_size > 0, name
    figures = {p.name for p in (metrics / "figures").iterdir()}
    expected = {"search_curves.png", "evaluate_curves.png", "policy_final.png", "policy_over_epochs.png",
                "sampling_histograms.png", "genotype_normal.png", "genotype_normal.svg", "genotype_reduce.png",
                "genotype_reduce.svg"}
    expected |= {f"{name}_{cell}.{ext}" for name, cells in (("paper-cifar10", ("normal", "reduce")),
                                                            ("paper-imagenet", ("normal", "reduce")))
                 for cell in cells for ext in ("png", "svg")}
    assert expected <= figures
    assert not any(name.startswith("paper-ptb") for name in figures)  # the paper's cells of this run's space only
    for name in expected:
        assert (metrics / "figures" / name).stat().st_size > 5_000, name


def test_report_numbers_come_from_the_metrics_files(done):
    text = (done / "metrics/report.md").read_text()
    assert text.startswith("# EDNAS report: digits")
    assert "top-1 test error 1.23% (accuracy 0.9877), 12,345 parameters" in text
    assert "final child accuracy 0.5432 (first epoch 0.2109), final reward 0.4321" in text
    assert "- measured cost: 0.0123 CPU-hours on cpu" in text
    assert "best reward 0.6543" in text and "(9 distinct)" in text
    assert "search `searchrun00001`, derive `deriverun00002`, evaluate `evalrun00003`" in text
    assert json.dumps(PAPER_GENOTYPES["paper-imagenet"].to_dict()) in text  # data/derive/genotype.json
    assert "| digits.search.lr | 0.1 |" in text  # the configuration
    for link in ("figures/policy_final.png", "figures/sampling_histograms.png", "figures/genotype_reduce.png",
                 "figures/genotype_reduce.svg", "figures/search_curves.png", "figures/evaluate_curves.png",
                 "figures/paper-cifar10_normal.png"):
        assert f"({link})" in text, link


def test_html_has_every_figure_inline_as_base64_png(done):
    page = (done / "metrics/report.html").read_text()
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(re.findall(r"!\[", (done / "metrics/report.md").read_text())) >= 12
    assert base64.b64decode(images[0])[:8] == b"\x89PNG\r\n\x1a\n"
    assert '<img src="figures/' not in page
    assert "<table>" in page and "top-1 test error 1.23%" in page and page.rstrip().endswith("</html>")


def test_comparison_ranks_pipelines_by_test_error(done):
    rows = comparison(done)
    digits = [r for r in rows if r["task"] == "digits"]
    assert [r["test_error"] for r in digits[:3]] == ["0.5", "1.0", "2.0"]
    assert [r["experiment"] for r in digits[:3]] == ["lr-0.2", "workspace", "lr-0.05"]
    assert [r["digits.search.lr"] for r in digits[:3]] == ["0.2", "0.1", "0.05"]  # the key that differs
    assert all(r["test_error"] == "" for r in digits[3:])  # never evaluated: last
    assert {r["experiment"] for r in digits[3:]} == {"unfinished", "workspace"}
    assert "prepare-only" not in {r["experiment"] for r in rows}  # nothing to compare
    assert rows[-1]["task"] == "cifar10"  # the report's task first
    this = [r for r in rows if r["this"] == "yes"]
    assert len(this) == 1  # the report's own pipeline (this tmp dir's params), which its report run finishes: the
    assert this[0]["stages"] == "report" and this[0]["status"] == "finished"  # table said running, stages ''
    assert {r["experiment"]: r["status"] for r in rows if r["this"] != "yes"} == {
        "lr-0.2": "finished", "workspace": "finished", "lr-0.05": "finished", "unfinished": "stopped after search"}
    assert float(digits[0]["search_child_acc"]) == 0.6 and float(digits[0]["derive_best_reward"]) == 0.7
    assert "runtime.seed" not in rows[0]  # equal everywhere: not a column
    md = (done / "metrics/comparison.md").read_text()
    assert md.index("lr-0.2") < md.index("lr-0.05") < md.index("unfinished")
    report = (done / "metrics/report.md").read_text()
    assert "## All pipelines in the tracking store" in report and "| lr-0.2 |" in report
    assert report.index("lr-0.2") < report.index("lr-0.05")


def test_a_changed_metric_changes_the_report(done, tmp_path, monkeypatch):
    root = tmp_path / "copy"
    shutil.copytree(done, root)
    (root / "metrics/evaluate.json").write_text(json.dumps(dict(EVALUATE, test_error=4.56)))
    (root / "metrics/info/evaluate.json").write_text(json.dumps(dict(EVALUATE_INFO, test_acc=0.9544)))
    search = dict(SEARCH, child_acc=0.7777)
    (root / "metrics/search.json").write_text(json.dumps(search))
    # figures are covered above; skip drawing them here
    monkeypatch.setattr(report_stage, "write_figures", lambda *a, **k: Figures())
    run_report(root, monkeypatch)
    before = (done / "metrics/report.md").read_text()
    after = (root / "metrics/report.md").read_text()
    assert after != before
    assert "top-1 test error 4.56% (accuracy 0.9544)" in after and "1.23%" not in after
    assert "final child accuracy 0.7777" in after
    assert "| test error (%) | 4.56 | - | - |" in after
    assert "top-1 test error 4.56%" in (root / "metrics/report.html").read_text()


def test_the_results_pipeline_is_this_one_when_the_report_reruns_at_another_revision(done, tmp_path, monkeypatch):
    """`git commit` then `dvc repro -f -s report` (the README's refresh): the report run's revision differs from the
    stages' that made the results, so its pipeline id does too. metrics/info/*.json name those stages' runs:
    their pipeline is `this`, and the report-only pipeline is no row of the comparison nor an incomplete member
    of the study."""
    root = tmp_path / "rerun"
    shutil.copytree(done, root)
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    (workspace_eval,) = [r for r in client.search_runs([client.get_experiment_by_name("ednas-digits").experiment_id])
                         if r.data.tags["ednas.pipeline_id"] == "pipe2" and r.data.tags["ednas.stage"] == "evaluate"]
    (root / "metrics/info/evaluate.json").write_text(json.dumps(dict(EVALUATE_INFO,
                                                                     mlflow_run_id=workspace_eval.info.run_id)))
    monkeypatch.setattr(report_stage, "write_figures", lambda *a, **k: Figures())
    run_report(root, monkeypatch)
    rows = [r for r in comparison(root) if r["task"] == "digits"]
    this = [r for r in rows if r["this"] == "yes"]
    assert [(r["pipeline"], r["test_error"]) for r in this] == [("pipe2", "1.0")]
    assert all(r["stages"] for r in rows)  # no report-only pipeline: the first report's and this one's are gone
    assert [r["experiment"] for r in rows] == ["lr-0.2", "workspace", "lr-0.05", "unfinished"]
    with open(root / "metrics/study.csv", newline="") as f:
        assert sum(int(r["incomplete"]) for r in csv.DictReader(f) if r["task"] == "digits") == 1  # `unfinished`


def test_a_pipeline_whose_evaluate_dvc_skipped_reuses_the_evaluation_its_report_names(done, tmp_path, monkeypatch):
    """`dvc exp run` whose search derives the cell that was evaluated last: DVC skips evaluate (its inputs are
    unchanged), so metrics/info/evaluate.json names an earlier pipeline's run. This pipeline, whose search and derive
    ran, is `this`; its row shows that evaluation's test error and says it is reused; the study counts it; its
    MLflow parent run gets that evaluation's headline numbers from pipe2's parent (not pipe2's search's)."""
    root = tmp_path / "skipped"
    shutil.copytree(done, root)
    own = next(r["pipeline"] for r in comparison(done) if r["this"] == "yes")  # the report's own pipeline id
    client = MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    digits = client.get_experiment_by_name("ednas-digits").experiment_id
    log_pipeline(client, digits, own, "digits", "", flat_params(dataclasses.replace(Params(), task="digits")), None,
                 ("search", "derive"))
    (pipe2_eval,) = [r for r in client.search_runs([digits]) if r.data.tags["ednas.pipeline_id"] == "pipe2"
                     and r.data.tags["ednas.stage"] == "evaluate"]
    (root / "metrics/info/evaluate.json").write_text(json.dumps(dict(EVALUATE_INFO,
                                                                     mlflow_run_id=pipe2_eval.info.run_id)))
    parent2 = client.create_run(digits, tags={"ednas.pipeline_id": "pipe2", "ednas.stage": "pipeline",
                                              "ednas.task": "digits"})  # pipe2's headline numbers
    now = int(time.time() * 1000)
    client.log_batch(parent2.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in
                                                   {"test_error": 1.0, "evaluate_hours": 0.5, "params_m": 0.01,
                                                    "search_child_acc": 0.6, "derive_best_reward": 0.7}.items()])
    client.set_terminated(parent2.info.run_id, "FINISHED")
    monkeypatch.setattr(report_stage, "write_figures", lambda *a, **k: Figures())
    run_report(root, monkeypatch)
    (parent,) = [r for r in client.search_runs([digits]) if r.data.tags["ednas.pipeline_id"] == own
                 and r.data.tags["ednas.stage"] == "pipeline"]  # mlflow ui compares experiments there
    assert parent.data.metrics == {"test_error": 1.0, "evaluate_hours": 0.5, "params_m": 0.01}
    assert parent.data.tags["ednas.reused"] == "evaluate of pipe2"
    rows = [r for r in comparison(root) if r["task"] == "digits"]
    (this,) = [r for r in rows if r["this"] == "yes"]
    assert (this["pipeline"], this["stages"], this["reused"]) == (own, "search derive report", "evaluate of pipe2")
    assert this["test_error"] == "1.0" and this["status"] == "finished"
    assert [r["reused"] for r in rows if r["this"] != "yes"] == [""] * (len(rows) - 1)
    assert "`reused`" in (root / "metrics/comparison.md").read_text()
    with open(root / "metrics/study.csv", newline="") as f:
        assert sum(int(r["incomplete"]) for r in csv.DictReader(f) if r["task"] == "digits") == 1  # `unfinished`


def test_named_genotype_from_evaluate_json_is_drawn(done, tmp_path, monkeypatch):
    root = tmp_path / "named"
    shutil.copytree(done, root)
    (root / "metrics/info/evaluate.json").write_text(json.dumps(dict(EVALUATE_INFO, genotype="paper-cifar10")))
    drawn = {}

    def fake_figures(out_dir, history, genotype, name, search_rows, evaluate_rows, strategy, task=""):
        drawn.update(genotype=genotype, name=name, epochs=list(history["epoch"]), rows=len(search_rows),
                     strategy=strategy)
        return Figures()

    monkeypatch.setattr(report_stage, "write_figures", fake_figures)
    run_report(root, monkeypatch)
    assert drawn == {"genotype": PAPER_GENOTYPES["paper-cifar10"], "name": "paper-cifar10",
                     "epochs": list(range(1, EPOCHS + 1)), "rows": EPOCHS, "strategy": "ednas"}
    assert json.dumps(PAPER_GENOTYPES["paper-cifar10"].to_dict()) in (root / "metrics/report.md").read_text()


def test_a_missing_info_file_is_named(done, tmp_path, monkeypatch):
    root = tmp_path / "no-info"
    shutil.copytree(done, root)
    (root / "metrics/info/derive.json").unlink()
    with pytest.raises(report_stage.StageError, match=r"metrics/info/derive.json is missing; run the stage"):
        run_report(root, monkeypatch)


def test_comparison_table_without_a_store():
    def pipeline(pid, task, error, lr, started):
        return {"pipeline": pid, "task": task, "strategy": "ednas", "experiment": pid, "git_rev": "", "started": "",
                "stages": "", "status": "finished", "started_ms": started, "search_child_acc": math.nan,
                "search_reward": math.nan, "search_rewards_total": math.nan, "search_hours": math.nan,
                "derive_best_reward": math.nan, "test_error": error, "test_ppl": math.nan, "params_m": math.nan,
                "params": {"search.lr": lr, "tracking.progress": pid, "runtime.seed": "2"}}

    pipelines = [pipeline("a", "cifar10", 3.0, "0.1", 1), pipeline("b", "cifar10", math.nan, "0.2", 2),
                 pipeline("c", "cifar10", 2.5, "0.1", 3), pipeline("d", "cifar10", math.nan, "0.1", 4)]
    header, rows = comparison_table(pipelines, "cifar10", current="c")
    assert "search.lr" in header and "runtime.seed" not in header and "tracking.progress" not in header
    assert header[:3] == ["pipeline", "task", "strategy"] and rows[0][2] == "ednas"
    assert "test_ppl" not in header  # no pipeline has it
    assert [r[0] for r in rows] == ["c", "a", "d", "b"]  # by test error; without one, newest first
    assert rows[0][header.index("this")] == "yes"


def test_text_task_is_ranked_by_perplexity_and_compared_to_the_ptb_row():
    evaluate = {k: v for k, v in EVALUATE_ALL.items() if k not in ("test_error", "test_acc")}
    evaluate.update(test_ppl=61.5, valid_ppl=63.0, params=23_000_000, params_m=23.0)
    search = dict(SEARCH_ALL, search_gpu_hours=2.4)
    del search["search_cpu_hours"]
    text = build_report("ptb", {"task": "ptb"}, search, DERIVE_ALL, evaluate,
                        PAPER_GENOTYPES["paper-ptb"].to_dict())
    assert "| test perplexity | 61.5 | 59.45 | +2.05 |" in text
    assert "| search cost (GPU-days) | 0.1 | 0.11 | -0.01 |" in text
    assert "- test perplexity 61.50, 23,000,000 parameters" in text
    assert main_metric("ptb") == "test_ppl" and main_metric("digits") == "test_error"


def test_random_search_is_compared_to_the_papers_random_row():
    text = build_report("cifar10", {"task": "cifar10", "search.strategy": "random"}, SEARCH_ALL, DERIVE_ALL,
                        dict(EVALUATE_ALL, test_error=4.0, params_m=3.4), {})
    assert "paper (random search row)" in text
    assert "| test error (%) | 4 | 3.91 | +0.09 |" in text


def test_other_strategies_are_compared_to_their_own_papers_next_to_ednas():
    for strategy, method, error, params_m in (("enas", "ENAS", 2.89, 4.6), ("nao", "NAONet-WS", 3.53, 2.5),
                                              ("evnas", "EvNAS-A", 2.4, 3.6)):
        text = build_report("cifar10", {"task": "cifar10", "search.strategy": strategy}, SEARCH_ALL, DERIVE_ALL,
                            dict(EVALUATE_ALL, test_error=3.0, params_m=3.0), {})
        assert f"paper ({method} row)" in text
        assert f"| test error (%) | 3 | {error:g} | {3.0 - error:+.4g} |" in text
        assert f"| parameters (M) | 3 | {params_m:g} |" in text
        rows = [line for line in text.splitlines() if line.startswith("| CIFAR-10 |")]
        assert any("| EDNAS | 0.28 | 3.7M | 2.84% test error |" in r for r in rows)
        assert any(f"| {method} |" in r for r in rows)
    text = build_report("ptb", {"task": "ptb", "ptb.search.strategy": "enas"}, SEARCH_ALL, DERIVE_ALL,
                        dict(EVALUATE_ALL, test_ppl=60.0, params_m=24.0), {})
    assert "| test perplexity | 60 | 55.8 | +4.2 |" in text
