"""The pipeline's report: what a pipeline found, against the paper, and against every other pipeline in the
tracking store. One concern a module:

- paper.py      — the published numbers of EDNAS and of every other strategy per task (EDNAS_SPEC.md sections 7
  and 9, with sources) and the metric that ranks a task;
- figures.py    — every figure of the report written under one folder (curves, policy heatmaps, sampling
  histograms, cell diagrams of the evaluated genotype and of the paper's);
- comparison.py — runs grouped by pipeline (each with its status), ranked by the main metric, written as
  comparison.{md,csv}; it works on run-like objects (read from the store with ednas_core.tracking.ednas_runs);
- seed_study.py — the pipelines grouped across seeds (mean +- std per setting, failures listed), study.{md,csv,png};
- markdown.py   — the report as Markdown;
- html.py       — that Markdown as self-contained HTML (PNG figures inline as base64).

Reading the pipeline's files and writing the outputs is stages/report.py's.
"""

from .comparison import (COMPARISON_FIXED, COMPARISON_METRICS, comparison_table, differing_params,
                         pipelines_from_runs, results_pipeline, reused_headline, used_tag, write_comparison)
from .figures import FigureRef, Figures, write_figures
from .html import markdown_to_html
from .markdown import build_report, md_table
from .paper import MAIN_METRIC, PAPER, PAPER_RANDOM, PAPER_TABLE, PUBLISHED, main_metric, paper_table, published

__all__ = [
    "COMPARISON_FIXED", "COMPARISON_METRICS", "MAIN_METRIC", "PAPER", "PAPER_RANDOM", "PAPER_TABLE", "PUBLISHED",
    "FigureRef", "Figures", "build_report", "comparison_table", "differing_params", "results_pipeline",
    "main_metric", "markdown_to_html", "md_table", "paper_table", "pipelines_from_runs", "published", "reused_headline",
    "used_tag", "write_comparison", "write_figures",
]
