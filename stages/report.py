"""report: what the pipeline found, against the paper, and against every other pipeline in the MLflow store.

Reads metrics/{search,derive,evaluate}.json, metrics/{search,evaluate}_epochs.csv, data/search/policy_history.npz
and the evaluated genotype (data/derive/genotype.json, or the named one in metrics/evaluate.json), and writes

- metrics/report.md and metrics/report.html (the same content; the HTML is self-contained, figures inline as
  base64 PNG): configuration, measured search cost, derived genotype, evaluation, the paper's numbers for the task
  side by side with the difference, learning curves, policy heatmaps, sampling histograms, cell diagrams, the
  comparison of pipelines and the MLflow run ids;
- metrics/figures/: the figures (PNG; cell diagrams also SVG), including the paper's three genotypes;
- metrics/comparison.{md,csv}: one row per pipeline (runs grouped by the tag ednas.pipeline_id) of every
  `ednas-<task>` experiment in the tracking store, sorted by the task's main metric.

The comparison reads the tracking store, which DVC does not track: after other experiments finish, refresh it
with `dvc repro -f report` (or `python -m stages.report`)."""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ednas_core.checkpoint import atomic_write_text
from ednas_core.genotypes import PAPER_GENOTYPES, Genotype, load_genotype

from .common import DERIVE_DIR, METRICS_DIR, SEARCH_DIR, StageError, flat_params, read_params, run_stage

FIGURES_DIR = METRICS_DIR / "figures"
HISTORY = SEARCH_DIR / "policy_history.npz"

# EDNAS paper (EDNAS_SPEC.md section 7): search cost in GPU-days, parameters in millions, the task's result.
PAPER = {
    "cifar10": {"search_gpu_days": 0.28, "params_m": 3.7, "test_error": 2.84},
    "imagenet": {"search_gpu_days": 3.67, "params_m": 4.7, "test_error": 26.9, "top5_error": 8.9},
    "ptb": {"search_gpu_days": 0.11, "params_m": 23.0, "test_ppl": 59.45},
}
# The paper's own random-search rows (search.strategy: random).
PAPER_RANDOM = {
    "cifar10": {"search_gpu_days": 0.27, "params_m": 3.4, "test_error": 3.91},
    "ptb": {"search_gpu_days": 0.10, "params_m": 23.0, "test_ppl": 61.24},
}
PAPER_TABLE = [  # (task, method, search cost in GPU days, params, result) as printed in the paper
    ("cifar10", "CIFAR-10", "EDNAS", "0.28", "3.7M", "2.84% test error"),
    ("imagenet", "ImageNet (direct search)", "EDNAS", "3.67", "4.7M", "26.9 / 8.9 top-1 / top-5 error"),
    ("ptb", "PTB", "EDNAS", "0.11", "23M", "59.45 test perplexity"),
    ("cifar10", "CIFAR-10", "random search", "0.27", "3.4M", "3.91% test error"),
    ("ptb", "PTB", "random search", "0.10", "23M", "61.24 test perplexity"),
]
# The metric that ranks pipelines of a task (lower is better for all of them).
MAIN_METRIC = {"ptb": "test_ppl", "markov": "test_ppl"}


def main_metric(task: str) -> str:
    return MAIN_METRIC.get(task, "test_error")


def _load(name: str) -> dict[str, Any]:
    path = METRICS_DIR / name
    if not path.is_file():
        raise StageError(f"{path} is missing; run the stage that writes it first (dvc repro)")
    return json.loads(path.read_text())


def _fmt(value: Any, digits: int = 4) -> str:
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.{digits}g}"
    return "-" if value is None else str(value)


def _read_rows(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    def cell(v: Any) -> str:
        return _fmt(v).replace("|", "\\|")

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines


# --- figures ----------------------------------------------------------------------------------------------


@dataclass
class FigureRef:
    """A figure written under metrics/figures: `path` is the PNG, relative to metrics/ (as the report links it)."""

    key: str
    title: str
    path: str
    svg: str = ""


@dataclass
class Figures:
    search: list[FigureRef] = field(default_factory=list)
    genotype: list[FigureRef] = field(default_factory=list)
    evaluate: list[FigureRef] = field(default_factory=list)
    paper: list[FigureRef] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)

    def all(self) -> list[FigureRef]:
        return self.search + self.genotype + self.evaluate + self.paper


def _save(fig: Any, out_dir: Path, name: str, title: str, svg: bool = False) -> FigureRef:
    from ednas_core.viz import save_figure

    formats = ("png", "svg") if svg else ("png",)
    save_figure(fig, out_dir / name, formats)
    rel = f"{out_dir.name}/{name}"
    return FigureRef(name, title, f"{rel}.png", f"{rel}.svg" if svg else "")


def write_figures(out_dir: Path, history: Mapping[str, np.ndarray] | None, genotype: Genotype,
                  genotype_name: str, search_rows: list[dict], evaluate_rows: list[dict]) -> Figures:
    """Every figure of the report, written under out_dir (metrics/figures)."""
    from ednas_core import viz

    out_dir.mkdir(parents=True, exist_ok=True)
    figs = Figures()
    if search_rows:
        figs.search.append(_save(viz.search_curves(search_rows), out_dir, "search_curves", "Search learning curves"))
    else:
        figs.missing.append("metrics/search_epochs.csv (search learning curves)")
    if history is not None and "epoch" in history:
        epochs = [int(e) for e in history["epoch"]]
        last = {k.removeprefix("prob_"): v[-1] for k, v in history.items() if k.startswith("prob_")}
        figs.search.append(_save(viz.policy_heatmaps(last, epoch=epochs[-1]), out_dir, "policy_final",
                                 f"Policy vectors after the last epoch ({epochs[-1]})"))
        figs.search.append(_save(viz.policy_small_multiples(history, epochs=epochs), out_dir, "policy_over_epochs",
                                 "Operation policy over the search"))
        if any(k.startswith("counts_") for k in history):
            figs.search.append(_save(viz.sampling_histograms(history, epochs=epochs), out_dir, "sampling_histograms",
                                     "Cumulative sampling histograms of edges and operations"))
    else:
        figs.missing.append(f"{HISTORY} (policy heatmaps and sampling histograms)")
    for cell_type, fig in viz.genotype_diagrams(genotype, genotype_name).items():
        figs.genotype.append(_save(fig, out_dir, f"genotype_{cell_type}", f"{genotype_name}: {cell_type} cell",
                                   svg=True))
    if evaluate_rows:
        figs.evaluate.append(_save(viz.evaluate_curves(evaluate_rows), out_dir, "evaluate_curves",
                                   "Evaluation learning curves"))
    else:
        figs.missing.append("metrics/evaluate_epochs.csv (evaluation learning curves)")
    for name, paper_genotype in PAPER_GENOTYPES.items():
        for cell_type, fig in viz.genotype_diagrams(paper_genotype, name).items():
            figs.paper.append(_save(fig, out_dir, f"{name}_{cell_type}", f"{name}: {cell_type} cell", svg=True))
    return figs


def _images(refs: Sequence[FigureRef]) -> list[str]:
    lines = []
    for ref in refs:
        svg = f" ([SVG]({ref.svg}))" if ref.svg else ""
        lines += [f"![{ref.title}]({ref.path})", "", f"*{ref.title}*{svg}", ""]
    return lines


# --- comparison of pipelines in the tracking store -----------------------------------------------------


SEARCH_KEYS = {"search_child_acc": "child_acc", "search_reward": "reward"}
COMPARISON_FIXED = ["pipeline", "task", "experiment", "git_rev", "started", "stages"]
COMPARISON_METRICS = ["search_child_acc", "search_reward", "search_hours", "derive_best_reward", "test_error",
                      "test_ppl", "params_m"]


def _all_runs(client: Any) -> list[Any]:
    from ednas_core.tracking import _retry

    experiments = [e for e in _retry(client.search_experiments) if e.name.startswith("ednas-")]
    if not experiments:
        return []
    runs, token = [], None
    while True:
        page = _retry(client.search_runs, [e.experiment_id for e in experiments], max_results=1000,
                      page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _pick(runs: list[Any]) -> Any:
    """The latest finished run of a stage in a pipeline (else the latest run)."""
    finished = [r for r in runs if r.info.status == "FINISHED"]
    return max(finished or runs, key=lambda r: r.info.start_time or 0)


def pipelines_from_runs(runs: Iterable[Any], current: str = "") -> list[dict[str, Any]]:
    """Groups MLflow runs by ednas.pipeline_id: one dict per pipeline with its tags, params and headline
    metrics (NaN where a stage did not run or did not log the metric). Pipelines without a search, derive or
    evaluate run are left out, except `current`."""
    groups: dict[str, dict[str, list]] = {}
    for run in runs:
        tags = run.data.tags
        pid = tags.get("ednas.pipeline_id")
        if not pid:
            continue
        stage = tags.get("ednas.stage") or tags.get("dvc.stage", "?")
        groups.setdefault(pid, {}).setdefault(stage, []).append(run)
    out = []
    for pid, stages in groups.items():
        if not {"search", "derive", "evaluate"} & set(stages) and pid != current:
            continue  # only a prepare-data or report run: nothing to compare
        picked = {stage: _pick(rs) for stage, rs in stages.items()}
        any_run = picked.get("search") or next(iter(picked.values()))
        tags = any_run.data.tags
        started = min(r.info.start_time or 0 for rs in stages.values() for r in rs)

        def metric(stage: str, key: str) -> float:
            run = picked.get(stage)
            return float(run.data.metrics[key]) if run is not None and key in run.data.metrics else math.nan

        hours = metric("search", "search_gpu_hours")
        if math.isnan(hours):
            hours = metric("search", "search_cpu_hours")
        finished = [s for s in ("prepare-data", "search", "derive", "evaluate", "report")
                    if s in picked and picked[s].info.status == "FINISHED"]
        out.append({
            "pipeline": pid,
            "task": tags.get("ednas.task", ""),
            "experiment": tags.get("dvc.exp_name") or "workspace",
            "git_rev": tags.get("git.rev", "")[:8],
            "started": datetime.fromtimestamp(started / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "started_ms": started,
            "stages": " ".join(finished),
            "search_child_acc": metric("search", "child_acc"),
            "search_reward": metric("search", "reward"),
            "search_hours": hours,
            "derive_best_reward": metric("derive", "best_reward"),
            "test_error": metric("evaluate", "test_error"),
            "test_ppl": metric("evaluate", "test_ppl"),
            "params_m": metric("evaluate", "params_m"),
            "params": dict(any_run.data.params),
        })
    return out


def differing_params(pipelines: Sequence[Mapping[str, Any]]) -> list[str]:
    """Parameter keys whose values differ between pipelines of the same task (tracking.* excluded: it does
    not change results)."""
    keys: set[str] = set()
    by_task: dict[str, list] = {}
    for p in pipelines:
        by_task.setdefault(p["task"], []).append(p["params"])
    for group in by_task.values():
        for key in set().union(*group):
            if key.startswith("tracking."):
                continue
            if len({g.get(key, "") for g in group}) > 1:
                keys.add(key)
    return sorted(keys)


def comparison_table(pipelines: Sequence[Mapping[str, Any]], task: str,
                     current: str = "") -> tuple[list[str], list[list[Any]]]:
    """Header and rows: the current task's pipelines first, each task sorted by its main metric ascending
    (pipelines without it last, newest first among them); `current` marks this report's pipeline."""
    varying = differing_params(pipelines)
    metrics = [m for m in COMPARISON_METRICS
               if m not in ("test_error", "test_ppl") or any(not math.isnan(p[m]) for p in pipelines)]

    def order(p: Mapping[str, Any]) -> tuple:
        value = p[main_metric(p["task"])]
        missing = math.isnan(value)
        return (p["task"] != task, p["task"], missing, 0.0 if missing else value, -p.get("started_ms", 0))

    ranked = sorted(pipelines, key=order)
    header = COMPARISON_FIXED + ["this"] + varying + metrics
    rows = [[p[k] for k in COMPARISON_FIXED] + ["yes" if p["pipeline"] == current else ""] +
            [p["params"].get(k, "") for k in varying] + [p[m] for m in metrics] for p in ranked]
    return header, rows


def collect_comparison(current: str = "", task: str = "") -> tuple[list[str], list[list[Any]]]:
    """The comparison table of every pipeline in the tracking store (ednas_core.tracking.tracking_uri())."""
    from mlflow.tracking import MlflowClient

    from ednas_core.tracking import tracking_uri

    runs = _all_runs(MlflowClient(tracking_uri=tracking_uri()))
    return comparison_table(pipelines_from_runs(runs, current), task, current)


def write_comparison(header: list[str], rows: list[list[Any]], md_path: Path, csv_path: Path) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if isinstance(v, float) and math.isnan(v) else v for v in row])
    atomic_write_text(csv_path, buffer.getvalue())
    text = "\n".join(["# EDNAS pipelines in the tracking store", "",
                      "One row per pipeline (MLflow runs sharing the tag ednas.pipeline_id), ranked by the task's "
                      "main metric (lower is better). Parameter columns are the keys that differ between "
                      "pipelines.", ""] + _md_table(header, rows)) + "\n"
    atomic_write_text(md_path, text)
    return text


# --- the report ---------------------------------------------------------------------------------------


def _paper_rows(task: str, strategy: str, evaluate: dict, search_days: float, kind: str) -> list[list[Any]]:
    paper = (PAPER_RANDOM if strategy == "random" else PAPER).get(task)
    metric = main_metric(task)
    label = "test perplexity" if metric == "test_ppl" else "test error (%)"
    rows = [[label, evaluate.get(metric, math.nan), metric],
            ["parameters (M)", evaluate.get("params_m", math.nan), "params_m"],
            [f"search cost ({kind}-days)", search_days, "search_gpu_days"]]
    out = []
    for label, ours, key in rows:
        theirs = paper.get(key) if paper else None
        diff = f"{round(ours - theirs, 9):+.4g}" if theirs is not None and isinstance(ours, (int, float)) else "-"
        out.append([label, ours, theirs if theirs is not None else "-", diff])
    return out


def build_report(task: str, params: dict[str, Any], search: dict, derive: dict, evaluate: dict,
                 genotype_json: dict, *, figures: Figures | None = None,
                 comparison: tuple[list[str], list[list[Any]]] | None = None, report_run_id: str = "") -> str:
    """The report as Markdown. Figures link metrics/figures/ relative to metrics/ (where report.md lives)."""
    prefix = "" if task == "cifar10" else f"{task}."
    strategy = str(params.get(f"{prefix}search.strategy", "ednas"))
    hours = search.get("search_gpu_hours", search.get("search_cpu_hours", 0.0))
    kind = "GPU" if "search_gpu_hours" in search else "CPU"
    train_hours = evaluate.get("train_gpu_hours", evaluate.get("train_cpu_hours", 0.0))
    train_kind = "GPU" if "train_gpu_hours" in evaluate else "CPU"
    paper = (PAPER_RANDOM if strategy == "random" else PAPER).get(task)
    which = "random-search row" if strategy == "random" else "EDNAS row"
    lines = [f"# EDNAS report: {task}", "",
             f"Search strategy `{strategy}`; search on {search.get('device', '?')}, evaluation on "
             f"{evaluate.get('device', '?')}.", ""]
    lines += ["## Result against the paper", ""]
    lines += _md_table(["", "this run", f"paper ({which})" if paper else "paper", "difference"],
                       _paper_rows(task, strategy, evaluate, hours / 24.0, kind))
    if not paper:
        lines += ["", f"The paper has no {task} experiment; the numbers above stand alone."]
    if kind == "CPU":
        lines += ["", "The search cost here is measured in CPU time; the paper's is GPU time."]
    if task in PAPER:
        lines += ["", f"The paper's rows for {task} (EDNAS_SPEC.md section 7):", ""]
        lines += _md_table(["task", "method", "search cost (GPU days)", "params", "result"],
                           [row[1:] for row in PAPER_TABLE if row[0] == task])
    lines += ["", "## Search", "",
              f"- epochs: {search['epochs']}, final child accuracy {_fmt(search['child_acc'])} "
              f"(first epoch {_fmt(search.get('first_epoch_child_acc', math.nan))}), final reward "
              f"{_fmt(search['reward'])}, policy entropy {_fmt(search['entropy'])}",
              f"- final reward baseline (moving average) {_fmt(search.get('baseline', math.nan))}",
              f"- measured cost: {hours:.4g} {kind}-hours on {search.get('device', '?')}", ""]
    if figures:
        lines += _images(figures.search)
    lines += ["## Derive", "",
              f"- {derive.get('samples')} samples ({derive.get('distinct_samples')} distinct) scored on "
              f"{derive.get('scored_on_images')} validation images: best reward "
              f"{_fmt(derive.get('best_reward'))}, argmax architecture {_fmt(derive.get('argmax_reward'))}, "
              f"mean {_fmt(derive.get('mean_reward'))}; written: {derive.get('mode')}",
              "", "Evaluated genotype:", "", "```json", json.dumps(genotype_json), "```", ""]
    if figures:
        lines += _images(figures.genotype)
    lines += ["## Evaluation", "",
              f"- genotype: {evaluate['genotype']}, {evaluate['epochs']} epochs, "
              f"{train_hours:.4g} {train_kind}-hours on {evaluate.get('device', '?')}",
              (f"- test perplexity {evaluate['test_ppl']:.2f}" if "test_ppl" in evaluate else
               f"- top-1 test error {evaluate['test_error']:.2f}% (accuracy {evaluate['test_acc']:.4f})")
              + f", {evaluate['params']:,} parameters (auxiliary head excluded)", ""]
    if figures:
        lines += _images(figures.evaluate)
    if comparison is not None:
        header, rows = comparison
        lines += ["## All pipelines in the tracking store", "",
                  f"{len(rows)} pipelines (MLflow runs grouped by ednas.pipeline_id), ranked by "
                  f"{main_metric(task)} (lower is better); `this` marks this report's pipeline. Also in "
                  "comparison.md and comparison.csv.", ""]
        lines += _md_table(header, rows) if rows else ["(no pipelines recorded yet)"]
        lines.append("")
    if figures and figures.paper:
        lines += ["## The paper's genotypes", ""]
        lines += _images(figures.paper)
    if figures and figures.missing:
        lines += ["Figures not drawn, their input is missing: " + "; ".join(figures.missing), ""]
    lines += ["## Configuration", ""]
    sections = ("runtime.", "data.", f"{prefix}search.", f"{prefix}derive.", f"{prefix}evaluate.")
    shown = [k for k in params if k == "task" or k.startswith(sections)]
    lines += _md_table(["key", "value"], [[k, str(params[k])] for k in shown])
    report_run = f", report `{report_run_id}`" if report_run_id else ""
    lines += ["", "## MLflow runs", "",
              f"- search `{search.get('mlflow_run_id', '?')}`, derive `{derive.get('mlflow_run_id', '?')}`, "
              f"evaluate `{evaluate.get('mlflow_run_id', '?')}`{report_run}; open them with "
              "`mlflow ui --backend-store-uri sqlite:///mlflow.db`", ""]
    return "\n".join(lines)


# --- Markdown -> self-contained HTML (the subset build_report writes) -----------------------------------


def _inline(text: str) -> str:
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)
    out = re.sub(r"(?<![\w*])\*([^*]+)\*(?![\w*])", r"<em>\1</em>", out)
    return re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', out)


def _image_tag(alt: str, src: str, base: Path) -> str:
    path = base / src
    if src.endswith(".png") and path.is_file():
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        src = f"data:image/png;base64,{data}"
    return f'<img src="{src}" alt="{html.escape(alt)}">'


def markdown_to_html(text: str, base: Path, title: str = "EDNAS report") -> str:
    """HTML of the Markdown subset the report uses (headings, lists, tables, code blocks, images, paragraphs);
    PNG images under `base` are inlined as base64 data URIs."""
    body: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body.append("<pre><code>" + html.escape("\n".join(lines[i + 1:j])) + "</code></pre>")
            i = j + 1
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                rows.append(lines[i])
                i += 1
            cells = [[c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", r.strip())[1:-1]] for r in rows]
            head, data = cells[0], [c for c in cells[1:] if not all(set(x) <= {"-"} for x in c)]
            body.append("<table><thead><tr>" + "".join(f"<th>{_inline(c)}</th>" for c in head) + "</tr></thead><tbody>"
                        + "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in r) + "</tr>" for r in data)
                        + "</tbody></table>")
            continue
        elif line.startswith("- "):
            items = []
            while i < len(lines) and lines[i].startswith("- "):
                items.append(f"<li>{_inline(lines[i][2:])}</li>")
                i += 1
            body.append("<ul>" + "".join(items) + "</ul>")
            continue
        elif m := re.fullmatch(r"!\[([^\]]*)\]\(([^)]+)\)", line.strip()):
            body.append(f"<figure>{_image_tag(m.group(1), m.group(2), base)}</figure>")
        elif line.strip():
            body.append(f"<p>{_inline(line)}</p>")
        i += 1
    style = ("body{font-family:system-ui,sans-serif;max-width:1400px;margin:2em auto;padding:0 1em;color:#222}"
             "table{border-collapse:collapse;margin:1em 0;font-size:0.9em}"
             "th,td{border:1px solid #ccc;padding:0.25em 0.6em;text-align:left}th{background:#f3f3f3}"
             "img{max-width:100%;height:auto}figure{margin:1em 0}"
             "pre{background:#f6f6f6;padding:0.8em;overflow-x:auto;white-space:pre-wrap}")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{style}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _history() -> dict[str, np.ndarray] | None:
    if not HISTORY.is_file():
        return None
    with np.load(HISTORY) as data:
        return {k: data[k] for k in data.files}


def main() -> None:
    from ednas_core.tracking import StageRun

    params, text = read_params()
    search, derive, evaluate = _load("search.json"), _load("derive.json"), _load("evaluate.json")
    source = evaluate["genotype"]
    genotype = load_genotype(DERIVE_DIR / "genotype.json" if source == "derived" else source)
    flat = flat_params(params)
    with StageRun("report", params.task, flat, text) as run:
        figures = write_figures(FIGURES_DIR, _history(), genotype, "derived" if source == "derived" else source,
                                _read_rows(METRICS_DIR / "search_epochs.csv"),
                                _read_rows(METRICS_DIR / "evaluate_epochs.csv"))
        comparison = collect_comparison(run.tags["ednas.pipeline_id"], params.task)
        write_comparison(*comparison, METRICS_DIR / "comparison.md", METRICS_DIR / "comparison.csv")
        report = build_report(params.task, flat, search, derive, evaluate, genotype.to_dict(), figures=figures,
                              comparison=comparison, report_run_id=run.run_id)
        atomic_write_text(METRICS_DIR / "report.md", report)
        atomic_write_text(METRICS_DIR / "report.html",
                          markdown_to_html(report, METRICS_DIR, f"EDNAS report: {params.task}"))
        for name in ("report.md", "report.html", "comparison.md", "comparison.csv"):
            run.log_artifact(METRICS_DIR / name)
        for ref in figures.all():
            run.log_artifact(METRICS_DIR / ref.path, "figures")
        print(f"report: {METRICS_DIR / 'report.md'}, {METRICS_DIR / 'report.html'}, {FIGURES_DIR}/ "
              f"({len(figures.all())} figures), {len(comparison[1])} pipelines in {METRICS_DIR / 'comparison.md'}")


if __name__ == "__main__":
    run_stage("report", main)
