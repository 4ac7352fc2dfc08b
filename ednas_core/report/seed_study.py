"""The study across seeds: the pipelines of comparison.pipelines_from_runs grouped by their settings except the seed,
one row a group with the number of seeds, mean +- sample std (ddof=1), min and max of the task's main metric
(report.paper.main_metric), of the parameters, the search cost and the rewards scored (the search's reward budget),
and beside each group its strategy's published numbers on the task (report.paper: EDNAS's and the EDNAS paper's
random search, ENAS, NAONet-WS, EvNAS-A; on nb201 the NAS-Bench-201 paper's row of the strategy's counterpart in
the group's search mode, tabular REA, REINFORCE for EDNAS and random search, weight-sharing ENAS; none for the
others or the CPU tasks), written as study.{md,csv,png}. Each group is read against its control, the random-search
group of equal shared_settings (the same run but for the strategy): the difference of the means and a two-sided
Mann-Whitney U test (report.significance).

Which parameters make a group (study_params): every flat parameter of the pipeline's task except
- `runtime.seed`, the replicate axis of the study;
- `tracking.*`: what is logged, not what is computed;
- where and with which kernels the same computation runs (EXECUTION_KEYS): `runtime.device`, `runtime.compile`,
  `runtime.fused_optimizer`, `runtime.channels_last`, `runtime.deterministic`; they change results by
  floating-point rounding at most, less than a seed does, so seeds run on other GPUs or with other kernels
  belong together. `runtime.amp` stays a grouping key: bf16 against fp32 arithmetic is a real ablation;
- `data.root`: where the raw files lie (prepare-data checks what they hold);
- the sections of the other tasks (params.yaml holds every task's; CIFAR-10's are the top-level search, derive
  and evaluate): a digits pipeline does not read `search.lr`.
The git revision and the DVC experiment name do not split groups either.

A group's statistics count its pipelines that have the main metric and did not fail; a failed pipeline (status
`failed at <stage>` or `killed at <stage>`) is counted and listed with its stage and error, one without the main
metric yet is counted as incomplete; neither is dropped. Pure functions over the pipeline dicts: no tracking
store here."""

from __future__ import annotations

import csv
import io
import math
import os
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ednas_core.checkpoint import atomic_write_bytes, atomic_write_text
from ednas_core.config import TASKS
from ednas_core.strategies import key_owners

from .comparison import strategy_key, varying_keys
from .markdown import md_table
from .paper import METHOD_NAMES, NB201_REFERENCE_LINES, main_metric, published, published_for
from .significance import mann_whitney

SEED_KEY = "runtime.seed"
EXECUTION_KEYS = frozenset({"runtime.device", "runtime.compile", "runtime.fused_optimizer", "runtime.channels_last",
                            "runtime.deterministic", "data.root"})
CIFAR10_SECTIONS = ("search.", "derive.", "evaluate.")  # CIFAR-10's sections are params.yaml's top-level ones
PAPER_STRATEGY = "ednas"
CONTROL_STRATEGY = "random"  # the control every other strategy's group is tested against
METRIC_LABELS = {"test_error": "test error (%)", "test_ppl": "test perplexity"}
STAT_KEYS = ("params_m", "search_hours", "search_rewards_total")  # the headline numbers besides the main metric
STAT_LABELS = {"params_m": "params (M)", "search_hours": "search cost (h)", "search_rewards_total": "rewards scored",
               "search_answer_test_acc": "answer's test acc (%)", "search_rank_kendall_tau": "ranking (Kendall tau)"}
# per task, headline numbers of its own: NAS-Bench-201's truth about the search (the strategy's answer at the last
# epoch; how the shared weights rank the probe cells, weight-sharing mode)
TASK_STAT_KEYS: dict[str, tuple[str, ...]] = {"nb201": ("search_answer_test_acc", "search_rank_kendall_tau")}
# per task: the per-epoch search metrics drawn across seeds in study_curves.png (a search run's MLflow history,
# fetched by the caller into Study.curves), with the panel's title and its reference lines: NAS-Bench-201's truth
CURVES: dict[str, tuple[tuple[str, str], ...]] = {
    "nb201": (("answer_test_acc", "The strategy's answer each epoch (its final architecture)"),
              ("best_test_acc", "Best cell found so far (tabular: the best-validation look-up)"))}
CURVE_LINES: dict[str, dict[str, float]] = {"nb201": NB201_REFERENCE_LINES}
CURVE_LABEL = "test accuracy (%)"


def _other_sections(task: str) -> tuple[str, ...]:
    return tuple(p for t in TASKS if t != task for p in (CIFAR10_SECTIONS if t == "cifar10" else (f"{t}.",)))


def study_params(task: str, params: Mapping[str, str]) -> dict[str, str]:
    """The parameters that make a pipeline's group: all but the seed, tracking, execution and other tasks' keys."""
    others = _other_sections(task)
    return {k: str(v) for k, v in params.items() if k != SEED_KEY and k not in EXECUTION_KEYS
            and not k.startswith("tracking.") and not k.startswith(others)}


@dataclass(frozen=True)
class Summary:
    """n values: mean, sample std (NaN below 2 values), min, max (NaN without values)."""

    n: int
    mean: float
    std: float
    min: float
    max: float

    @staticmethod
    def of(values: Iterable[float]) -> "Summary":
        xs = [float(v) for v in values if not math.isnan(float(v))]
        if not xs:
            return Summary(0, math.nan, math.nan, math.nan, math.nan)
        std = statistics.stdev(xs) if len(xs) > 1 else math.nan
        return Summary(len(xs), statistics.fmean(xs), std, min(xs), max(xs))

    def mean_std(self) -> str:
        """'mean ± std' with 4 significant digits (the std 2), whole numbers from 10,000 on; '-' for a missing
        part."""
        if self.n == 0:
            return "-"
        return f"{_number(self.mean, 4)} ± {'-' if math.isnan(self.std) else _number(self.std, 2)}"

    def min_max(self) -> str:
        return "-" if self.n == 0 else f"{_number(self.min, 4)} / {_number(self.max, 4)}"


def _number(x: float, digits: int) -> str:
    """`digits` significant digits; a number of 10,000 or more whole (23700, not 2.37e+04: a count of rewards)."""
    return f"{x:.0f}" if abs(x) >= 1e4 else f"{x:.{digits}g}"


def _seed_order(seed: str) -> tuple:
    return (0, int(seed), "") if seed.lstrip("-").isdigit() else (1, 0, seed)


@dataclass(frozen=True)
class Versus:
    """A group's main metric against its control's: difference of the means (negative: lower error or perplexity
    than random search), the Mann-Whitney p, and the seeds on each side."""

    diff: float
    p: float
    n: int
    n_control: int

    def text(self) -> str:
        p = "-" if math.isnan(self.p) else _number(self.p, 2)
        return f"{self.diff:+.3g} (p {p}, {self.n} vs {self.n_control})"


@dataclass
class StudyGroup:
    """The pipelines of one task and one setting that differ only in the seed (and in what study_params drops)."""

    task: str
    strategy: str
    params: dict[str, str]
    distinguishing: dict[str, str] = field(default_factory=dict)  # the keys that differ between the task's groups
    pipelines: list[dict[str, Any]] = field(default_factory=list)
    control: "StudyGroup | None" = None  # the random-search group of the same settings (study_groups)

    @property
    def metric(self) -> str:
        return main_metric(self.task)

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [p for p in self.pipelines if p.get("failed_stage")]

    @property
    def counted(self) -> list[dict[str, Any]]:
        """The pipelines with the main metric that did not fail, the latest one of a seed run more than once
        (the same setting and seed again, e.g. after a code change): what the statistics are of, one per seed."""
        latest: dict[str, dict[str, Any]] = {}
        for p in self.pipelines:
            if p.get("failed_stage") or math.isnan(p[self.metric]):
                continue
            seed = p["params"].get(SEED_KEY, "?")
            if seed not in latest or p.get("started_ms", 0) >= latest[seed].get("started_ms", 0):
                latest[seed] = p
        return [p for p in self.pipelines if any(p is q for q in latest.values())]

    @property
    def incomplete(self) -> list[dict[str, Any]]:
        return [p for p in self.pipelines if not p.get("failed_stage") and math.isnan(p[self.metric])]

    @property
    def seeds(self) -> list[str]:
        """The seeds of the counted pipelines, in numeric order ('?' where a run has no runtime.seed)."""
        return sorted((p["params"].get(SEED_KEY, "?") for p in self.counted), key=_seed_order)

    def summary(self, key: str) -> Summary:
        return Summary.of(p.get(key, math.nan) for p in self.counted)

    def versus_control(self) -> "Versus | None":
        """The group's main metric against its control's (random search on the same settings): the difference of
        the means and the two-sided Mann-Whitney U test's p (NaN below 2 seeds a side); None without a control or
        without results on either side."""
        if self.control is None:
            return None
        mine = [p[self.metric] for p in self.counted]
        theirs = [p[self.metric] for p in self.control.counted]
        if not mine or not theirs:
            return None
        p = mann_whitney(mine, theirs)[1] if min(len(mine), len(theirs)) >= 2 else math.nan
        return Versus(statistics.fmean(mine) - statistics.fmean(theirs), p, len(mine), len(theirs))

    @property
    def paper(self) -> dict[str, Any] | None:
        """The published numbers of the group's strategy on its task (None where its paper has none; nb201: the
        benchmark's row of the strategy's counterpart in the group's search mode, report.paper.published_for)."""
        return published_for(self.strategy, self.task, self.params)

    @property
    def paper_method(self) -> str:
        """The name of the published row (the strategy's method; nb201: NB201's row and mode)."""
        return (self.paper or {}).get("method", METHOD_NAMES.get(self.strategy, self.strategy))

    @property
    def label(self) -> str:
        """The strategy and the distinguishing values, one a line, keys without the task's prefix; a key the group
        has no value of (another strategy's section) is left out."""
        prefix = f"{self.task}."
        return "\n".join([self.strategy] + [f"{k.removeprefix(prefix)}={v}" for k, v in self.distinguishing.items()
                                             if v != ""])


def shared_settings(task: str, params: Mapping[str, str]) -> dict[str, str]:
    """The parameters of a group that every strategy runs with: all but the strategy and what strategies alone read
    (their sections, EDNAS's policy_* keys: strategies.key_owners). Two groups of different strategies with equal
    shared settings differ in the strategy alone."""
    prefix = strategy_key(task).removesuffix("strategy")
    return {k: v for k, v in params.items()
            if k != strategy_key(task) and not (k.startswith(prefix) and key_owners(k[len(prefix):]))}


def _attach_controls(groups: Sequence[StudyGroup]) -> None:
    """Each group's control: the one random-search group of its task with equal shared_settings (none when there
    is none, or several: random groups that differ only in a key random search ignores)."""
    def setting(g: StudyGroup) -> tuple:
        return g.task, tuple(sorted(shared_settings(g.task, g.params).items()))

    controls: dict[tuple, list[StudyGroup]] = {}
    for g in groups:
        if g.strategy == CONTROL_STRATEGY:
            controls.setdefault(setting(g), []).append(g)
    for g in groups:
        if g.strategy != CONTROL_STRATEGY:
            found = controls.get(setting(g), [])
            g.control = found[0] if len(found) == 1 else None


def study_groups(pipelines: Sequence[Mapping[str, Any]], task: str = "") -> list[StudyGroup]:
    """The pipelines grouped by (task, strategy, study_params); only `task`'s when given. Groups are ordered by
    task (`task` first), strategy and distinguishing values; a group's pipelines by seed."""
    groups: dict[tuple, StudyGroup] = {}
    for p in pipelines:
        if task and p["task"] != task:
            continue
        key_params = study_params(p["task"], p["params"])
        key = (p["task"], p["strategy"], tuple(sorted(key_params.items())))
        groups.setdefault(key, StudyGroup(p["task"], p["strategy"], key_params)).pipelines.append(dict(p))
    by_task: dict[str, list[StudyGroup]] = {}
    for group in groups.values():
        by_task.setdefault(group.task, []).append(group)
    for name, members in by_task.items():
        varying = [k for k in varying_keys([(g.strategy, g.params) for g in members]) if k != strategy_key(name)]
        for g in members:
            g.distinguishing = {k: g.params.get(k, "") for k in varying}
            g.pipelines.sort(key=lambda p: (_seed_order(p["params"].get(SEED_KEY, "?")), p.get("started_ms", 0)))
    _attach_controls(list(groups.values()))
    return sorted(groups.values(), key=lambda g: (g.task != task, g.task, g.strategy,
                                                   tuple(g.distinguishing.values())))


def _distinguishing_keys(groups: Sequence[StudyGroup]) -> list[str]:
    return sorted(set().union(*(g.distinguishing for g in groups))) if groups else []


def _paper_text(group: StudyGroup) -> str:
    paper = group.paper
    if paper is None:
        return ""
    std = paper.get(f"{group.metric}_std")
    result = f"{paper.get(group.metric, math.nan):g}" + ("" if std is None else f" ± {std:g}")
    if paper["params_m"] is None and paper["search_gpu_days"] is None:  # nb201: the result alone
        return f"{group.paper_method}: {result}"
    days = "-" if paper["search_gpu_days"] is None else f"{paper['search_gpu_days']:g} GPU-days"
    return f"{group.paper_method}: {result} · {paper['params_m']:g}M · {days}"


def stat_keys(groups: Sequence[StudyGroup]) -> list[str]:
    """STAT_KEYS, and the TASK_STAT_KEYS of the groups' tasks."""
    return list(STAT_KEYS) + list(dict.fromkeys(k for g in groups for k in TASK_STAT_KEYS.get(g.task, ())))


def study_table(groups: Sequence[StudyGroup]) -> tuple[list[str], list[list[Any]]]:
    """The Markdown table: one row a group, the statistics as 'mean ± std' and 'min / max' text."""
    keys, stats = _distinguishing_keys(groups), stat_keys(groups)
    header = (["task", "strategy"] + keys +
              ["n", "seeds", "failed", "incomplete", "metric", "mean ± std", "min / max", "vs random (Δ mean, p)"] +
              [STAT_LABELS[k] for k in stats] + ["published (method: result · params · search)"])
    rows = []
    for g in groups:
        main = g.summary(g.metric)
        versus = g.versus_control()
        rows.append([g.task, g.strategy] + [g.distinguishing.get(k, "") for k in keys] +
                    [main.n, " ".join(g.seeds) or "-", len(g.failed), len(g.incomplete),
                     METRIC_LABELS.get(g.metric, g.metric), main.mean_std(), main.min_max(),
                     versus.text() if versus else "-", *(g.summary(key).mean_std() for key in stats),
                     _paper_text(g) or "-"])
    return header, rows


def study_csv_rows(groups: Sequence[StudyGroup]) -> tuple[list[str], list[list[Any]]]:
    """The CSV table: one row a group, every statistic its own number (empty where missing)."""
    keys, numbers = _distinguishing_keys(groups), stat_keys(groups)
    stats = ["mean", "std", "min", "max"]
    header = (["task", "strategy"] + keys + ["n", "seeds", "failed", "incomplete", "metric"] + stats +
              ["vs_random_diff", "vs_random_p", "vs_random_n"] + [f"{key}_{s}" for key in numbers for s in stats] +
              ["paper_method", "paper_result", "paper_result_std", "paper_params_m", "paper_search_gpu_days"])
    rows = []
    for g in groups:
        summaries = [g.summary(g.metric)] + [g.summary(key) for key in numbers]
        paper = g.paper or {}
        versus = g.versus_control()
        rows.append([g.task, g.strategy] + [g.distinguishing.get(k, "") for k in keys] +
                    [summaries[0].n, " ".join(g.seeds), len(g.failed), len(g.incomplete), g.metric] +
                    [getattr(summaries[0], name) for name in stats] +
                    ([versus.diff, versus.p, versus.n_control] if versus else [None] * 3) +
                    [getattr(s, name) for s in summaries[1:] for name in stats] +
                    [g.paper_method if paper else None, paper.get(g.metric), paper.get(f"{g.metric}_std"),
                     paper.get("params_m"), paper.get("search_gpu_days")])
    return header, rows


def failed_table(groups: Sequence[StudyGroup]) -> tuple[list[str], list[list[Any]]]:
    """Every failed pipeline: its group, pipeline id, experiment, seed, the stage that failed and its error."""
    header = ["task", "group", "pipeline", "experiment", "seed", "failed at", "error"]
    rows = [[g.task, g.label.replace("\n", ", "), p["pipeline"], p.get("experiment", ""),
             p["params"].get(SEED_KEY, "?"), p["failed_stage"], p.get("error") or "-"]
            for g in groups for p in g.failed]
    return header, rows


@dataclass
class Study:
    """The groups of a study with the tables made of them (what study.md, study.csv and the report show), and the
    per-epoch histories of its CURVES (search run id -> key -> [(epoch, value)]; tracking.metric_histories of
    curve_runs() and curve_keys(), filled by the caller: this module reads no tracking store)."""

    groups: list[StudyGroup]
    curves: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)

    def table(self) -> tuple[list[str], list[list[Any]]]:
        return study_table(self.groups)

    def failed(self) -> tuple[list[str], list[list[Any]]]:
        return failed_table(self.groups)

    def curve_keys(self) -> list[str]:
        """The CURVES keys of the study's tasks."""
        return list(dict.fromkeys(key for g in self.groups for key, _ in CURVES.get(g.task, ())))

    def curve_runs(self) -> list[str]:
        """The search runs whose histories the curves draw: those of the counted pipelines of tasks with CURVES."""
        return [p.get("search_run_id", "") for g in self.groups if g.task in CURVES for p in g.counted
                if p.get("search_run_id")]

    def group_curve(self, group: StudyGroup, key: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(epochs, mean, sample std (NaN below 2 seeds), seeds) of `key` across the group's counted pipelines,
        at every epoch any of them logged a finite value; empty arrays when none did."""
        by_epoch: dict[int, list[float]] = {}
        for p in group.counted:
            for epoch, value in self.curves.get(p.get("search_run_id", ""), {}).get(key, []):
                if math.isfinite(value):
                    by_epoch.setdefault(epoch, []).append(value)
        epochs = sorted(by_epoch)
        values = [by_epoch[e] for e in epochs]
        return (np.array(epochs, dtype=float), np.array([statistics.fmean(v) for v in values]),
                np.array([statistics.stdev(v) if len(v) > 1 else math.nan for v in values]),
                np.array([len(v) for v in values], dtype=float))


def build_study(pipelines: Sequence[Mapping[str, Any]], task: str = "") -> Study:
    return Study(study_groups(pipelines, task))


def _tick_label(group: StudyGroup) -> str:
    versus = group.versus_control()
    if versus is None or math.isnan(versus.p):
        return group.label
    return f"{group.label}\np vs random {_number(versus.p, 2)}"


def study_figure_png(study: Study) -> bytes:
    """The strip plot: one panel a task, each counted seed a point (jittered, reproducibly), the group's mean with
    a ±std bar, the EDNAS paper's value as a dashed horizontal line across the panel where the task has one, and
    each other strategy's published value as a dotted one across its own group; under a group with a random-search
    control, the p of the test against it."""
    from ednas_core.viz._common import figure_png_bytes, new_figure

    tasks = list(dict.fromkeys(g.task for g in study.groups))
    widths = [max(3.5, 1.9 * sum(g.task == t for g in study.groups)) for t in tasks] or [4.0]
    fig = new_figure(sum(widths) + 0.5, 4.2)
    if not tasks:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no pipelines recorded yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return figure_png_bytes(fig)
    axes = fig.subplots(1, len(tasks), width_ratios=widths, squeeze=False)[0]
    rng = np.random.default_rng(0)
    for ax, task in zip(axes, tasks):
        groups = [g for g in study.groups if g.task == task]
        metric = main_metric(task)
        task_paper = published(PAPER_STRATEGY, task) or {}  # the EDNAS paper's, dashed across the panel
        published_colour: dict[str, str] = {}  # one legend entry and colour a published row, however many groups
        for x, g in enumerate(groups):
            values = [p[metric] for p in g.counted]
            ax.scatter(x + rng.uniform(-0.15, 0.15, len(values)), values, s=22, alpha=0.75, color=f"C{x % 10}",
                       zorder=2)
            stat = g.summary(metric)
            if stat.n:
                ax.errorbar([x + 0.3], [stat.mean], yerr=None if math.isnan(stat.std) else [stat.std], fmt="o",
                            color="black", capsize=4, markersize=5, zorder=3)
            own = g.paper or {}
            if metric in own and own != task_paper:
                first = g.paper_method not in published_colour
                colour = published_colour.setdefault(g.paper_method, f"C{x % 10}")
                ax.hlines(own[metric], x - 0.35, x + 0.45, colors=colour, linestyles="dotted", linewidth=1.5,
                          label=f"{g.paper_method} paper: {own[metric]:g}" if first else "_nolegend_", zorder=1)
            if g.failed or g.incomplete:
                ax.annotate(f"{len(g.failed)} failed, {len(g.incomplete)} incomplete", (x, 0), xycoords=(
                    "data", "axes fraction"), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=7,
                    color="gray")
        if metric in task_paper:
            ax.axhline(task_paper[metric], color="gray", linestyle="--", linewidth=1,
                       label=f"EDNAS paper: {task_paper[metric]:g}")
        if ax.get_legend_handles_labels()[1]:
            ax.legend(loc="best", fontsize=8)
        ax.set_xticks(range(len(groups)), [_tick_label(g) for g in groups], fontsize=8)
        ax.set_xlim(-0.6, len(groups) - 0.2)
        ax.set_ylabel(METRIC_LABELS.get(metric, metric))
        ax.set_title(f"{task}: seeds (points), mean ± std (black)", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
    return figure_png_bytes(fig)


def _legend_label(group: StudyGroup, seeds: int) -> str:
    """The group's strategy and distinguishing values on one line, wrapped at 60 characters, and its seeds."""
    return textwrap.fill(f"{group.label.replace(chr(10), ', ')} (n={seeds})", 60, subsequent_indent="  ")


def study_curves_png(study: Study) -> bytes | None:
    """The anytime curves: for each task with CURVES, one panel a key that some group has values of, each group's
    mean across its seeds per epoch (a line, one colour a group in every panel) with a ±std band, and the task's
    reference lines (NB201: the space's optimum and mean); one legend below the panels (a group's label, its
    distinguishing values and seeds). None when no group has a value to draw."""
    from ednas_core.viz._common import figure_png_bytes, new_figure

    panels = []  # (task, title, [(colour, group, curve)])
    for task in dict.fromkeys(g.task for g in study.groups):
        members = [g for g in study.groups if g.task == task]
        for key, title in CURVES.get(task, ()):
            drawn = [(f"C{i % 10}", g, study.group_curve(g, key)) for i, g in enumerate(members)]
            drawn = [(c, g, curve) for c, g, curve in drawn if len(curve[0])]
            if drawn:
                panels.append((task, title, drawn))
    if not panels:
        return None
    entries: dict[str, Any] = {}  # legend label -> handle, in order of first appearance
    n_groups = len({id(g) for _, _, drawn in panels for _, g, _ in drawn})
    fig = new_figure(6.0 * len(panels), 4.0 + 0.22 * (n_groups + 2))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (task, title, drawn) in zip(axes, panels):
        for colour, g, (epochs, mean, std, seeds) in drawn:
            line, = ax.plot(epochs, mean, marker="o", markersize=3, color=colour)
            entries.setdefault(_legend_label(g, int(seeds.max())), line)
            ok = np.isfinite(std)
            if ok.any():
                ax.fill_between(epochs[ok], (mean - std)[ok], (mean + std)[ok], color=colour, alpha=0.15)
        for (name, value), style in zip(CURVE_LINES.get(task, {}).items(), ("--", ":")):
            entries.setdefault(f"{task} {name} {value}", ax.axhline(value, color="grey", linestyle=style,
                                                                     linewidth=1))
        ax.set_title(f"{task}: {title}", fontsize=9)
        ax.set_xlabel("search epoch")
        ax.set_ylabel(CURVE_LABEL)
        ax.grid(alpha=0.3)
    fig.legend(list(entries.values()), list(entries), loc="outside lower center", fontsize=7,
               ncol=2 if len(panels) > 1 else 1)
    return figure_png_bytes(fig)


def _csv_cell(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return value


def study_markdown(study: Study, png_link: str, curves_link: str = "") -> str:
    header, rows = study.table()
    lines = ["# Study across seeds", "",
             "One row per group of pipelines that differ only in `runtime.seed` (and in tracking, execution and "
             "other tasks' keys; see ednas_core/report/seed_study.py), with mean ± sample std (ddof=1), min and max "
             "of the seeds that finished; `n` counts them (a seed run more than once counts once, with its latest "
             "run), `failed` and `incomplete` (no main metric yet) count the rest. Parameter columns are the keys "
             "that differ between groups. `vs random`: the group's mean minus that of random search on the same "
             "settings (the random group that differs from it in the strategy alone; negative: better than random "
             "search), a two-sided Mann-Whitney U test's p and the seeds compared (the smallest p there can be is "
             "0.1 with 3 seeds a side, 0.029 with 4, 0.0079 with 5; `-` without such a group, p `-` below 2 seeds "
             "a side). Search cost in hours of the device the search ran on; rewards scored: the "
             "search's reward budget (validation batches or table look-ups; it differs between strategies by "
             "design). `published`: the "
             "group's strategy's own paper on the task (ednas_core/report/paper.py cites each), search cost in "
             "GPU-days; on nb201 the NAS-Bench-201 paper's row of the strategy's counterpart in the group's search "
             "mode, as a test error (100 - its accuracy), ± its std over 500 tabular runs.", ""]
    lines += md_table(header, rows) if rows else ["(no pipelines recorded yet)"]
    failed_header, failed_rows = study.failed()
    lines += ["", "## Failed pipelines", ""]
    lines += md_table(failed_header, failed_rows) if failed_rows else ["None."]
    lines += ["", f"![seeds of each group, mean ± std]({png_link})", ""]
    if curves_link:
        lines += [CURVES_CAPTION, "", f"![each group's search, mean ± std of its seeds per epoch]({curves_link})", ""]
    return "\n".join(lines)


CURVES_CAPTION = ("The search of each group against the benchmark's truth, epoch by epoch: the mean of its seeds "
                  "(n: how many) with ± one std, from each search run's MLflow history.")


def write_study(study: Study, md_path: Path, csv_path: Path, png_path: Path, png_link: str = "",
                curves_path: Path | None = None, curves_link: str = "") -> str:
    """Writes study.md (linking the figure as `png_link`, else its path relative to md_path), study.csv and the
    strip plot, and where study_curves_png draws anything the curves to `curves_path` (linked as `curves_link`,
    else relative; a curves file left there by an earlier study is removed otherwise), each atomically; returns
    the Markdown."""
    header, rows = study_csv_rows(study.groups)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows([[_csv_cell(v) for v in row] for row in rows])
    atomic_write_text(csv_path, buffer.getvalue())
    atomic_write_bytes(png_path, study_figure_png(study))
    curves = study_curves_png(study) if curves_path is not None else None
    if curves is not None:
        atomic_write_bytes(curves_path, curves)
        curves_link = curves_link or Path(os.path.relpath(curves_path, md_path.parent)).as_posix()
    else:
        curves_link = ""
        if curves_path is not None:
            curves_path.unlink(missing_ok=True)
    text = study_markdown(study, png_link or Path(os.path.relpath(png_path, md_path.parent)).as_posix(), curves_link)
    atomic_write_text(md_path, text)
    return text
