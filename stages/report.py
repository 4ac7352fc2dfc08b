"""report: metrics/report.md from the metrics files of the other stages: configuration, measured search and
training cost, the derived genotype, the evaluation result and the paper's numbers for the task side by side."""

from __future__ import annotations

import json
from typing import Any

from ednas_core.checkpoint import atomic_write_text
from ednas_core.genotypes import load_genotype
from ednas_core.tracking import StageRun

from .common import DERIVE_DIR, METRICS_DIR, StageError, flat_params, read_params, run_stage

# EDNAS paper, Table 1 (CIFAR-10): search cost in GPU-days, parameters, test error.
PAPER = {"cifar10": {"search_gpu_days": 0.28, "params_m": 3.7, "test_error": 2.84}}


def _load(name: str) -> dict[str, Any]:
    path = METRICS_DIR / name
    if not path.is_file():
        raise StageError(f"{path} is missing; run the stage that writes it first (dvc repro)")
    return json.loads(path.read_text())


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def build_report(task: str, params: dict[str, Any], search: dict, derive: dict, evaluate: dict,
                 genotype_json: dict) -> str:
    hours = search.get("search_gpu_hours", search.get("search_cpu_hours", 0.0))
    kind = "GPU" if "search_gpu_hours" in search else "CPU"
    train_hours = evaluate.get("train_gpu_hours", evaluate.get("train_cpu_hours", 0.0))
    train_kind = "GPU" if "train_gpu_hours" in evaluate else "CPU"
    lines = [f"# EDNAS report: {task}", ""]
    lines += ["## Result", "", "| | this run | paper | difference |", "|---|---|---|---|"]
    paper = PAPER.get(task)
    rows = [("test error (%)", evaluate["test_error"], "test_error"),
            ("parameters (M)", evaluate["params_m"], "params_m"),
            (f"search cost ({kind}-days)", hours / 24.0, "search_gpu_days")]
    for label, ours, key in rows:
        if paper:
            lines.append(f"| {label} | {_fmt(ours)} | {_fmt(paper[key])} | {ours - paper[key]:+.4g} |")
        else:
            lines.append(f"| {label} | {_fmt(ours)} | - | - |")
    if not paper:
        lines += ["", f"The paper has no {task} experiment; the numbers above stand alone."]
    lines += ["", "## Search", "",
              f"- epochs: {search['epochs']}, final child accuracy {_fmt(search['child_acc'])} "
              f"(first epoch {_fmt(search['first_epoch_child_acc'])}), final reward {_fmt(search['reward'])}, "
              f"policy entropy {_fmt(search['entropy'])}",
              f"- measured cost: {hours:.4g} {kind}-hours on {search['device']}",
              "", "## Derive", "",
              f"- {derive['samples']} samples ({derive['distinct_samples']} distinct) scored on "
              f"{derive['scored_on_images']} validation images: best reward {_fmt(derive['best_reward'])}, "
              f"argmax architecture {_fmt(derive['argmax_reward'])}, mean {_fmt(derive['mean_reward'])}; "
              f"written: {derive['mode']}",
              "", "```json", json.dumps(genotype_json), "```",
              "", "## Evaluation", "",
              f"- genotype: {evaluate['genotype']}, {evaluate['epochs']} epochs, "
              f"{train_hours:.4g} {train_kind}-hours on {evaluate['device']}",
              f"- top-1 test error {evaluate['test_error']:.2f}% (accuracy {evaluate['test_acc']:.4f}), "
              f"{evaluate['params']:,} parameters (auxiliary head excluded)",
              "", "## Configuration", "", "| key | value |", "|---|---|"]
    prefix = "" if task == "cifar10" else f"{task}."
    sections = ("runtime.", "data.", f"{prefix}search.", f"{prefix}derive.", f"{prefix}evaluate.")
    shown = [k for k in params if k == "task" or k.startswith(sections)]
    lines += [f"| {k} | {params[k]} |" for k in shown]
    lines += ["", "## MLflow runs", "",
              f"- search `{search['mlflow_run_id']}`, derive `{derive['mlflow_run_id']}`, "
              f"evaluate `{evaluate['mlflow_run_id']}`; open them with `mlflow ui --backend-store-uri sqlite:///mlflow.db`",
              ""]
    return "\n".join(lines)


def main() -> None:
    params, text = read_params()
    search, derive, evaluate = _load("search.json"), _load("derive.json"), _load("evaluate.json")
    source = evaluate["genotype"]
    genotype = load_genotype(DERIVE_DIR / "genotype.json" if source == "derived" else source)
    with StageRun("report", params.task, flat_params(params), text) as run:
        report = build_report(params.task, flat_params(params), search, derive, evaluate, genotype.to_dict())
        atomic_write_text(METRICS_DIR / "report.md", report)
        run.log_text(report, "report.md")
        print(f"report: {METRICS_DIR / 'report.md'}")


if __name__ == "__main__":
    run_stage("report", main)
