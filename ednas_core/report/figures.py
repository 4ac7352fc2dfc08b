"""Every figure of the report, written under one folder (metrics/figures in the pipeline): learning curves,
policy heatmaps, sampling histograms, the evaluated genotype's cell diagrams and the paper's genotypes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ednas_core.genotypes import PAPER_GENOTYPES, Genotype
from ednas_core.strategies import STRATEGIES, Strategy
from ednas_core.viz._common import cell_name


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


def has_policy(strategy: str) -> bool:
    """Whether the strategy learns a policy of probability vectors (EDNAS; random search's is the uniform one),
    rather than sampling a controller (ENAS) or holding a population (EvNAS, NAO, REA)."""
    return strategy not in STRATEGIES or STRATEGIES[strategy].distribution_kind == "policy"


def write_figures(out_dir: Path, history: Mapping[str, np.ndarray] | None, genotype: Genotype,
                  genotype_name: str, search_rows: list[dict], evaluate_rows: list[dict],
                  strategy: str = "ednas", task: str = "") -> Figures:
    """Every figure of the report, written under out_dir (metrics/figures); `strategy` names what the
    policy heatmaps show (a policy's softmax or a population's choice frequencies)."""
    from ednas_core import viz

    out_dir.mkdir(parents=True, exist_ok=True)
    figs = Figures()
    cls = STRATEGIES.get(strategy, Strategy)  # a name no longer registered: the interface's defaults (a policy)
    if search_rows:
        figs.search.append(_save(viz.search_curves(search_rows, strategy, has_policy(strategy), cls.signal_panels,
                                                   cls.baseline_title),
                                 out_dir, "search_curves", "Search learning curves"))
    else:
        figs.missing.append("metrics/search_epochs.csv (search learning curves)")
    if task == "nb201":
        from .nb201 import nb201_curves

        fig = nb201_curves(search_rows)
        if fig is not None:
            figs.search.append(_save(fig, out_dir, "nb201_curves", "Search against the NAS-Bench-201 table"))
    if history is not None and "epoch" in history:
        epochs = [int(e) for e in history["epoch"]]
        last = {k.removeprefix("prob_"): v[-1] for k, v in history.items() if k.startswith("prob_")}
        title = STRATEGIES[strategy].distribution_title if strategy in STRATEGIES else "policy"
        figs.search.append(_save(viz.policy_heatmaps(last, epoch=epochs[-1], title=title, kind=cls.distribution_kind),
                                 out_dir, "policy_final",
                                 f"{title[0].upper()}{title[1:]} after the last epoch ({epochs[-1]})"))
        figs.search.append(_save(viz.policy_small_multiples(history, epochs=epochs, title=f"Operations: {title}"),
                                 out_dir, "policy_over_epochs", f"Operations over the search: {title}"))
        if any(k.startswith("counts_") for k in history):
            figs.search.append(_save(viz.sampling_histograms(history, epochs=epochs), out_dir, "sampling_histograms",
                                     "Cumulative sampling histograms of edges and operations"))
    else:
        figs.missing.append("data/search/policy_history.npz (policy heatmaps and sampling histograms)")
    for cell_type, fig in viz.genotype_diagrams(genotype, genotype_name).items():
        figs.genotype.append(_save(fig, out_dir, f"genotype_{cell_type}", f"{genotype_name}: {cell_name(cell_type)}",
                                   svg=True))
    # a cell only looked up in a table (nb201.evaluate.train: false) was not trained: it has no learning curve
    trained = any(row.get("train_loss") not in (None, "") for row in evaluate_rows)
    if trained:
        figs.evaluate.append(_save(viz.evaluate_curves(evaluate_rows), out_dir, "evaluate_curves",
                                   "Evaluation learning curves"))
    elif not evaluate_rows:
        figs.missing.append("metrics/evaluate_epochs.csv (evaluation learning curves)")
    for name, paper_genotype in PAPER_GENOTYPES.items():
        if paper_genotype.space != genotype.space:  # the paper's cells of this run's space (none for nb201)
            continue
        for cell_type, fig in viz.genotype_diagrams(paper_genotype, name).items():
            figs.paper.append(_save(fig, out_dir, f"{name}_{cell_type}", f"{name}: {cell_name(cell_type)}", svg=True))
    return figs
