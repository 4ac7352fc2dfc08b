"""The report as Markdown: configuration, measured search cost, derived genotype, evaluation, the paper's
numbers for the task beside the difference, figures, the comparison of pipelines, the study across seeds and the
MLflow run ids."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from ..config import task_prefix
from ..strategies import STRATEGIES, Strategy
from ..tasks import get_task
from .figures import FigureRef, Figures, has_policy
from .nb201 import nb201_result_lines
from .paper import METHOD_NAMES, main_metric, paper_table, published

if TYPE_CHECKING:  # seed_study imports md_table from here
    from .seed_study import Study


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}g}"
    return "-" if value is None else str(value)


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    """A Markdown table's lines; floats with 4 significant digits, NaN and None as `-`."""
    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


def _images(refs: Sequence[FigureRef]) -> list[str]:
    lines = []
    for ref in refs:
        svg = f" ([SVG]({ref.svg}))" if ref.svg else ""
        lines += [f"![{ref.title}]({ref.path})", "", f"*{ref.title}*{svg}", ""]
    return lines


def _paper_rows(task: str, strategy: str, evaluate: dict, search_days: float, kind: str) -> list[list[Any]]:
    paper = published(strategy, task)
    metric = main_metric(task)
    label = "test perplexity" if metric == "test_ppl" else get_task(task).error_label
    rows = [[label, evaluate.get(metric, math.nan), metric],
            *([["top-5 error (%)", evaluate.get("top5_error", math.nan), "top5_error"]]
              if "top5_error" in evaluate or (paper and "top5_error" in paper) else []),
            ["parameters (M)", evaluate.get("params_m", math.nan), "params_m"],
            [f"search cost ({kind}-days)", search_days, "search_gpu_days"]]
    out = []
    for label, ours, key in rows:
        theirs = paper.get(key) if paper else None
        diff = f"{round(ours - theirs, 9):+.4g}" if theirs is not None and isinstance(ours, (int, float)) else "-"
        out.append([label, ours, theirs if theirs is not None else "-", diff])
    return out


def _scored_on(derive: dict, task: str) -> str:
    count = derive.get("scored_on_images")  # images, or predicted tokens for text tasks; 0 for table look-ups
    if count == 0:
        return "table look-ups (the tabular reward)"
    return f"{count} validation tokens (one bptt window)" if get_task(task).text else f"{count} validation images"


def _table_section(title: str, intro: str, header: list[str], rows: list[list[Any]]) -> list[str]:
    """A report section: its title, one paragraph, the table (or a line saying it is empty)."""
    return [f"## {title}", "", intro, "", *(md_table(header, rows) if rows else ["(no pipelines recorded yet)"]), ""]


def build_report(task: str, params: dict[str, Any], search: dict, derive: dict, evaluate: dict,
                 genotype_json: dict, *, figures: Figures | None = None,
                 comparison: tuple[list[str], list[list[Any]]] | None = None, study: Study | None = None,
                 study_figure: str = "", study_curves_figure: str = "", report_run_id: str = "") -> str:
    """The report as Markdown. Figures link metrics/figures/ relative to metrics/ (where report.md lives);
    `study_figure` is the study's strip plot, `study_curves_figure` its per-epoch curves (nb201), linked so."""
    prefix = task_prefix(task)
    task_def = get_task(task)
    table = task_def.has_table  # a benchmark table's result section instead of the paper's
    strategy = str(params.get(f"{prefix}search.strategy", "ednas"))
    hours = search.get("search_gpu_hours", search.get("search_cpu_hours", 0.0))
    kind = "GPU" if "search_gpu_hours" in search else "CPU"
    train_hours = evaluate.get("train_gpu_hours", evaluate.get("train_cpu_hours", 0.0))
    train_kind = "GPU" if "train_gpu_hours" in evaluate else "CPU"
    paper = published(strategy, task)
    which = f"{METHOD_NAMES.get(strategy, strategy)} row"
    lines = [f"# EDNAS report: {task}", "",
             f"Search strategy `{strategy}`; search on {search.get('device', '?')}, "
             + (f"evaluation on {evaluate['device']}." if "device" in evaluate else
                "evaluation: a look-up in the NAS-Bench-201 table." if table else "evaluation on ?."), ""]
    if table:
        lines += nb201_result_lines(str(params.get("nb201.search.mode", "?")), strategy, search, derive, evaluate)
    else:
        lines += ["## Result against the paper", ""]
        lines += md_table(["", "this run", f"paper ({which})" if paper else "paper", "difference"],
                          _paper_rows(task, strategy, evaluate, hours / 24.0, kind))
    if not paper and not table:
        lines += ["", f"No published {task} result of strategy `{strategy}`; the numbers above stand alone."]
    if kind == "CPU" and paper and not table:  # nb201's published rows hold no search cost
        lines += ["", "The search cost here is measured in CPU time; the paper's is GPU time."]
    rows = paper_table(task)
    if rows:
        lines += ["", f"Published rows for {task} (EDNAS_SPEC.md sections 7 and 9):", ""]
        lines += md_table(["task", "method", "search cost (GPU days)", "params", "result", "source"], rows)
    # EDNAS and random search have a policy; the others' figures show choice frequencies (ENAS: of its samples;
    # EvNAS, NAO, REA: of the population or pool), and only REINFORCE strategies keep a reward baseline
    entropy = "policy entropy" if has_policy(strategy) else "entropy of its choice frequencies"
    lines += ["", "## Search", "",
              f"- epochs: {search['epochs']}, final child accuracy {_fmt(search.get('child_acc', math.nan))} "
              f"(first epoch {_fmt(search.get('first_epoch_child_acc', math.nan))}), final reward "
              f"{_fmt(search.get('reward', math.nan))}, {entropy} {_fmt(search['entropy'])}"]
    if "baseline" in search:
        cls = STRATEGIES.get(strategy, Strategy)
        lines.append(f"- final reward baseline ({cls.baseline_title}) {_fmt(search['baseline'])}")
    if "rewards_total" in search:  # the strategy's reward budget
        unit = ("table look-ups" if "queries" in search else
                "validation windows" if task_def.text else "validation batches")
        lines.append(f"- rewards scored: {search['rewards_total']:.0f} ({unit}, one a reward)")
    lines += [f"- measured cost: {hours:.4g} {kind}-hours on {search.get('device', '?')}", ""]
    if figures:
        lines += _images(figures.search)
    lines += ["## Derive", "",
              f"- {derive.get('samples')} candidates ({derive.get('distinct_samples')} distinct) scored on "
              f"{_scored_on(derive, task)}: best reward "
              f"{_fmt(derive.get('best_reward'))}, the strategy's own answer (argmax) {_fmt(derive.get('argmax_reward'))}, "
              f"mean {_fmt(derive.get('mean_reward'))}; written: {derive.get('mode')}",
              "", "Evaluated genotype:", "", "```json", json.dumps(genotype_json), "```", ""]
    if figures:
        lines += _images(figures.genotype)
    if table and "params" not in evaluate:  # looked up only (nb201.evaluate.train: false)
        lines += ["## Evaluation", "", f"- genotype: {evaluate['genotype']}, looked up in the NAS-Bench-201 table "
                  f"(no training here): CIFAR-10 test error {evaluate['test_error']:.2f}% after the benchmark's "
                  "200 epochs", ""]
    else:
        lines += ["## Evaluation", "",
                  f"- genotype: {evaluate['genotype']}, {evaluate['epochs']} epochs, "
                  f"{train_hours:.4g} {train_kind}-hours on {evaluate.get('device', '?')}",
                  (f"- test perplexity {evaluate['test_ppl']:.2f}" if "test_ppl" in evaluate else
                   f"- top-1 test error {evaluate['test_error']:.2f}% (accuracy {evaluate['test_acc']:.4f})"
                   + (f", top-5 error {evaluate['top5_error']:.2f}%" if "top5_error" in evaluate else "")
                   + task_def.error_note)
                  + f", {evaluate['params']:,} parameters"
                  + (" (auxiliary head excluded)" if task_def.auxiliary_head else ""), ""]
    if figures:
        lines += _images(figures.evaluate)
    if comparison is not None:
        header, rows = comparison
        lines += _table_section("All pipelines in the tracking store",
                                f"{len(rows)} pipelines (MLflow runs grouped by ednas.pipeline_id), ranked by "
                                f"{main_metric(task)} (lower is better); `this` marks this report's pipeline. Also "
                                "in comparison.md and comparison.csv.", header, rows)
    if study is not None:
        header, rows = study.table()
        failed = study.failed()[1]
        lines += _table_section("Study across seeds",
                                f"{len(rows)} groups of pipelines that differ only in the seed: mean ± sample std, "
                                f"min / max of the seeds that finished, the difference from random search on the "
                                f"same settings with a Mann-Whitney U test's p; {len(failed)} failed pipelines, "
                                "listed with their errors in study.md (also study.csv).", header, rows)
        if study_figure:
            lines += [f"![seeds of each group, mean ± std]({study_figure})", ""]
        if study_curves_figure:
            from .seed_study import CURVES_CAPTION  # seed_study imports this module

            lines += [CURVES_CAPTION, "", f"![each group's search, mean ± std of its seeds per epoch]"
                      f"({study_curves_figure})", ""]
    if figures and figures.paper:
        lines += ["## The paper's genotypes", ""]
        lines += _images(figures.paper)
    if figures and figures.missing:
        lines += ["Figures not drawn, their input is missing: " + "; ".join(figures.missing), ""]
    lines += ["## Configuration", ""]
    sections = ("runtime.", "data.", f"{prefix}search.", f"{prefix}derive.", f"{prefix}evaluate.")
    shown = [k for k in params if k == "task" or k.startswith(sections)]
    lines += md_table(["key", "value"], [[k, str(params[k])] for k in shown])
    report_run = f", report `{report_run_id}`" if report_run_id else ""
    lines += ["", "## MLflow runs", "",
              f"- search `{search.get('mlflow_run_id', '?')}`, derive `{derive.get('mlflow_run_id', '?')}`, "
              f"evaluate `{evaluate.get('mlflow_run_id', '?')}`{report_run}; open them with "
              "`mlflow ui --backend-store-uri sqlite:///mlflow.db`", ""]
    return "\n".join(lines)
