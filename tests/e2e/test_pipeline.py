"""The real pipeline: `dvc repro` of the five stages, up-to-date detection, an ablation with `dvc exp run -S`,
another strategy, and what lands in MLflow (runs, tags, per-epoch metrics, artifacts). Queued experiments run
by parallel workers: test_queue_sweep.py."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from pipeline import NAO_SMALL, dvc, mlflow_runs, set_args

pytestmark = pytest.mark.slow
STAGES = ["prepare-data", "search", "derive", "evaluate", "report"]


def client(ws: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")


def artifact_paths(c: MlflowClient, run_id: str, path: str = "") -> set[str]:
    out = set()
    for item in c.list_artifacts(run_id, path):
        out |= artifact_paths(c, run_id, item.path) if item.is_dir else {item.path}
    return out


def test_repro_runs_all_stages_and_writes_outputs(workspace):
    for rel in ("data/prepared/dataset.pt", "data/search/supernet.safetensors", "data/search/policy_history.npz",
                "data/derive/genotype.json", "data/derive/candidates.csv", "data/evaluate/model.safetensors",
                "metrics/search.json", "metrics/derive.json", "metrics/evaluate.json", "metrics/report.md",
                "metrics/search_epochs.csv", "metrics/evaluate_epochs.csv", "metrics/info/prepare.json",
                "metrics/info/search.json", "metrics/info/derive.json", "metrics/info/evaluate.json"):
        assert (workspace / rel).is_file(), rel
    assert not (workspace / "data/search/checkpoint.safetensors").exists()  # removed once the search finished
    genotype = json.loads((workspace / "data/derive/genotype.json").read_text())
    assert genotype["space"] == "cnn" and len(genotype["normal"]) == 8
    report = (workspace / "metrics/report.md").read_text()
    evaluate = json.loads((workspace / "metrics/evaluate.json").read_text())
    assert f"{evaluate['test_error']:.2f}%" in report


def test_stages_depend_on_the_selected_tasks_params_only(workspace):
    """The workspace's dvc.yaml is narrowed to digits: dvc.lock records digits' sections, no other task's."""
    from ruamel.yaml import YAML

    lock = YAML(typ="safe").load((workspace / "dvc.lock").read_text())["stages"]
    params = {name: set(stage.get("params", {}).get("params.yaml", {})) for name, stage in lock.items()}
    assert params["search"] == {"task", "runtime", "data.train_portion", "digits.search"}
    assert params["derive"] == {"task", "runtime", "data.train_portion", "digits.search", "digits.derive"}
    assert params["evaluate"] == {"task", "runtime", "digits.evaluate"}
    assert params["check-params"] == set()  # params.yaml is its file dependency
    assert "params.yaml" in {dep["path"] for dep in lock["check-params"]["deps"]}


def test_mlflow_has_one_run_per_stage_with_tags_metrics_and_artifacts(workspace):
    plain = [r for r in mlflow_runs(workspace) if not r.data.tags.get("dvc.exp_name")]
    prepare = [r for r in plain if r.data.tags["dvc.stage"] == "prepare-data"]
    assert len(prepare) == 1
    pipeline = prepare[0].data.tags["ednas.pipeline_id"]
    runs = {r.data.tags["dvc.stage"]: r for r in plain if r.data.tags["ednas.pipeline_id"] == pipeline}
    assert set(STAGES) == set(runs)
    assert all(runs[s].info.status == "FINISHED" for s in STAGES)
    assert all(len(runs[s].data.tags["git.rev"]) == 40 for s in STAGES)
    search = runs["search"]
    assert search.data.params["digits.search.lr"] == "0.1" and search.data.params["task"] == "digits"
    c = client(workspace)
    for key in ("child_loss", "child_acc", "reward", "baseline", "entropy", "entropy_normal_edge", "lr",
                "child_images_per_s"):
        history = c.get_metric_history(search.info.run_id, key)
        assert sorted(m.step for m in history) == [1, 2], key
    paths = artifact_paths(c, search.info.run_id)
    assert {"policy/epoch_0001.json", "policy/epoch_0002.json", "final_policy.json"} <= paths
    policy = json.loads((Path(search.info.artifact_uri.removeprefix("file://")) / "policy/epoch_0002.json").read_text())
    first_edge = next(iter(policy["reduce_edge"].values()))  # labelled: {'0->2': {'max_pool_3x3': p, ...}, ...}
    assert len(policy["normal_edge"]) == 14 and abs(sum(first_edge.values()) - 1) < 1e-3
    assert {"derive/genotype.json", "derive/candidates.csv"} <= artifact_paths(c, runs["derive"].info.run_id)
    assert {"model/model.safetensors", "genotype.json"} <= artifact_paths(c, runs["evaluate"].info.run_id)
    assert len(c.get_metric_history(runs["evaluate"].info.run_id, "test_acc")) == 1
    # artifacts land beside mlflow.db at the repository root, not in a temporary copy
    assert search.info.artifact_uri.startswith((workspace / "mlruns").as_uri())
    # one parent run for the pipeline, the stage runs nested under it, the headline numbers on it
    [parent] = [r for r in mlflow_runs(workspace, parents=True) if r.data.tags["ednas.pipeline_id"] == pipeline]
    assert all(runs[s].data.tags["mlflow.parentRunId"] == parent.info.run_id for s in STAGES)
    assert parent.info.status == "FINISHED" and parent.data.params == search.data.params
    assert parent.data.tags["mlflow.runName"] == f"workspace @ {search.data.tags['git.rev'][:8]}"
    evaluate = json.loads((workspace / "metrics/evaluate.json").read_text())
    assert parent.data.metrics["test_error"] == pytest.approx(evaluate["test_error"])
    assert {"search_child_acc", "search_reward", "search_hours", "derive_best_reward", "params_m",
            "evaluate_hours"} <= set(parent.data.metrics)


def test_second_repro_is_up_to_date(workspace):
    assert "up to date" in dvc(workspace, "status").stdout
    out = dvc(workspace, "repro").stdout
    assert "Running stage" not in out


def test_dvc_plots_render_every_plot(workspace, tmp_path):
    plots = dvc(workspace, "plots", "show", "-o", str(tmp_path / "plots"))
    assert "could not find" not in plots.stdout + plots.stderr and "failed" not in plots.stderr.lower()
    assert (tmp_path / "plots/index.html").is_file()


def test_exp_run_ablation_reruns_search_and_after_but_not_prepare(workspace):
    before = {r.info.run_id for r in mlflow_runs(workspace)}
    out = dvc(workspace, "exp", "run", "-n", "lr-ablation", "-S", "digits.search.lr=0.05").stdout
    assert "Running stage 'search'" in out and "Running stage 'prepare-data'" not in out
    new = [r for r in mlflow_runs(workspace) if r.info.run_id not in before]
    assert sorted(r.data.tags["dvc.stage"] for r in new) == sorted(["search", "derive", "evaluate", "report"])
    assert {r.data.tags["dvc.exp_name"] for r in new} == {"lr-ablation"}
    assert len({r.data.tags["ednas.pipeline_id"] for r in new}) == 1
    assert {r.data.params["digits.search.lr"] for r in new} == {"0.05"}
    [parent] = [r for r in mlflow_runs(workspace, parents=True) if r.data.tags["dvc.exp_name"] == "lr-ablation"]
    assert parent.data.tags["mlflow.runName"] == "lr-ablation"
    assert parent.data.tags["ednas.changed_params"] == "digits.search.lr=0.05"
    assert {r.data.tags["mlflow.parentRunId"] for r in new} == {parent.info.run_id}
    shown = json.loads(dvc(workspace, "exp", "show", "--json").stdout)
    assert "lr-ablation" in json.dumps(shown) and "child_acc" in json.dumps(shown)


def test_an_evaluate_ablation_reuses_the_search_and_derive_that_dvc_skipped(workspace):
    """`dvc exp run -S digits.evaluate.init_channels=6`: DVC runs evaluate and report only; the experiment's
    pipeline reuses the search and derive of the pipeline that made them, in its comparison row and on its MLflow
    parent run, so that both compare it whole."""
    searched = json.loads((workspace / "metrics/info/search.json").read_text())["mlflow_run_id"]
    source = client(workspace).get_run(searched).data.tags["ednas.pipeline_id"]
    before = {r.info.run_id for r in mlflow_runs(workspace)}
    dvc(workspace, "exp", "run", "-n", "eval-ablation", "-S", "digits.evaluate.init_channels=6")
    new = [r for r in mlflow_runs(workspace) if r.info.run_id not in before]
    assert sorted(r.data.tags["dvc.stage"] for r in new) == ["evaluate", "report"]
    with open(workspace / "metrics/comparison.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["experiment"] == "eval-ablation")
    assert row["this"] == "yes" and row["stages"] == "evaluate report"
    assert row["reused"] == f"search of {source}, derive of {source}"
    search = json.loads((workspace / "metrics/search.json").read_text())
    assert float(row["search_child_acc"]) == pytest.approx(search["child_acc"]) and row["test_error"] != ""
    [parent] = [r for r in mlflow_runs(workspace, parents=True) if r.data.tags["dvc.exp_name"] == "eval-ablation"]
    assert parent.data.tags["ednas.reused"] == row["reused"]
    assert parent.data.metrics["search_child_acc"] == pytest.approx(search["child_acc"])
    assert {"derive_best_reward", "test_error", "evaluate_hours"} <= set(parent.data.metrics)


@pytest.mark.parametrize("name, extra", [("enas", ()), ("evnas", ()), ("nao", set_args(NAO_SMALL))])
def test_exp_run_with_another_strategy(workspace, name, extra):
    """`dvc exp run -S <task>.search.strategy=<name>`: the whole pipeline runs with that strategy, MLflow tags
    it and logs its own section (not the others'), and the report compares it with its own paper."""
    before = {r.info.run_id for r in mlflow_runs(workspace)}
    out = dvc(workspace, "exp", "run", "-n", f"strategy-{name}", "-S", f"digits.search.strategy={name}",
              *extra).stdout
    assert "Running stage 'search'" in out and "Running stage 'prepare-data'" not in out
    new = [r for r in mlflow_runs(workspace) if r.info.run_id not in before]
    assert sorted(r.data.tags["dvc.stage"] for r in new) == ["derive", "evaluate", "report", "search"]
    assert all(r.info.status == "FINISHED" and r.data.tags["ednas.strategy"] == name for r in new)
    search = next(r for r in new if r.data.tags["dvc.stage"] == "search")
    params = search.data.params
    assert params["digits.search.strategy"] == name
    assert any(k.startswith(f"digits.search.{name}.") for k in params)
    assert not any(k.startswith(f"digits.search.{other}.") for other in {"enas", "evnas", "nao"} - {name}
                   for k in params)
    statistic = {"enas": "controller_entropy", "evnas": "fitness_mean", "nao": "pairwise_accuracy"}[name]
    assert statistic in search.data.metrics
    report = (workspace / "metrics/report.md").read_text()
    assert f"Search strategy `{name}`" in report
    assert "NaN" not in (workspace / "metrics/search.json").read_text()  # unmeasured values are left out
    comparison = (workspace / "metrics/comparison.csv").read_text().splitlines()
    column = comparison[0].split(",").index("strategy")
    assert name in {line.split(",")[column] for line in comparison[1:]}
    # the strategy's reward budget: every reward it scored, in the search's info, MLflow, the report, comparison
    with open(workspace / "metrics/search_epochs.csv", newline="") as f:
        total = sum(float(row["reward_count"]) for row in csv.DictReader(f))
    assert json.loads((workspace / "metrics/info/search.json").read_text())["rewards_total"] == total > 0
    assert search.data.metrics["rewards_total"] == total
    assert f"- rewards scored: {total:.0f} (validation batches, one a reward)" in report
    with open(workspace / "metrics/comparison.csv", newline="") as f:
        row = next(r for r in csv.DictReader(f) if r["experiment"] == f"strategy-{name}")
    assert float(row["search_rewards_total"]) == total
