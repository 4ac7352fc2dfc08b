"""The NAS-Bench-201 part of the report: the found cell against the benchmark's truth (its 200-epoch test
accuracies and rank among the 15,625 cells), the published NB201 results beside it, and the curves of the search
against the table (best cell found so far; the strategy's own answer each epoch; ranking quality of the shared
weights)."""

from __future__ import annotations

import math
from typing import Any, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..strategies import STRATEGIES, Strategy
from .paper import NB201_OPTIMUM, NB201_PUBLISHED, NB201_REFERENCE_LINES, NB201_SPACE_MEAN


def _published_value(mean: float, std: float | None) -> str:
    return f"{mean:.2f}" if std is None else f"{mean:.2f} +- {std:.2f}"


def _num(value: Any, digits: int = 2) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def nb201_result_lines(mode: str, strategy: str, search: dict, derive: dict, evaluate: dict) -> list[str]:
    """The 'Result against the benchmark' section."""
    total = evaluate.get("architectures", 15625)
    lines = ["## Result against the benchmark (NAS-Bench-201)", "",
             f"Search mode `{mode}`, strategy `{strategy}`. The cell evaluated, `{evaluate.get('arch_string', '?')}` "
             f"(NB201 index {evaluate.get('nb201_index', '?')}), as the benchmark trained it for 200 epochs:", ""]
    lines += ["| dataset | test accuracy (%) |", "|---|---|"]
    table = {**evaluate, "cifar10_test_acc": evaluate.get("table_test_acc", evaluate.get("cifar10_test_acc"))}
    for key, name in (("cifar10_test_acc", "CIFAR-10"), ("cifar100_test_acc", "CIFAR-100"),
                      ("imagenet16_test_acc", "ImageNet16-120")):
        if table.get(key) is not None:
            lines.append(f"| {name} | {_num(table[key])} |")
    lines += ["", f"- rank {evaluate.get('rank', '?')} of {total} on CIFAR-10 (1 = the best cell); the space's "
              f"optimum is {NB201_OPTIMUM}, its mean {NB201_SPACE_MEAN}",
              f"- 12-epoch CIFAR-10 validation accuracy (the tabular reward) {_num(evaluate.get('cifar10_valid12_acc'))}"]
    if "table_test_acc" in evaluate:  # nb201.evaluate.train: trained here too
        lines.append(f"- trained here with the benchmark's recipe ({evaluate.get('epochs', '?')} epochs): CIFAR-10 "
                     f"test accuracy {_num(evaluate.get('cifar10_test_acc'))}, against the table's "
                     f"{_num(evaluate['table_test_acc'])}")
    if mode == "tabular":
        queries = search.get("queries")
        lines += [f"- search: {'?' if queries is None else f'{queries:.0f}'} table look-ups; best validation "
                  f"accuracy found {_num(search.get('best_valid_acc'))}, whose cell tests at "
                  f"{_num(search.get('best_test_acc'))}"]
        published = NB201_PUBLISHED["tabular"]
        note = ("Published tabular searches (NB201 Table 5, mean +- std over 500 runs, 12,000 s of simulated "
                "training each; the budget here is counted in look-ups, search.budget):")
    else:
        lines += [f"- ranking by the shared weights at the end of the search: Kendall tau "
                  f"{_num(search.get('rank_kendall_tau'), 3)}, Spearman rho {_num(search.get('rank_spearman_rho'), 3)}, "
                  f"top-5% precision {_num(search.get('rank_top5_precision'), 3)}"]
        published = NB201_PUBLISHED["weight_sharing"]
        note = "Published weight-sharing searches on CIFAR-10 (the derived cell's CIFAR-10 test accuracy):"
    if search.get("answer_test_acc") is not None:
        rank, answer = search.get("answer_rank"), STRATEGIES.get(strategy, Strategy).answer_title
        lines.append(f"- the strategy's own answer at the end of the search ({answer}) tests at "
                     f"{_num(search['answer_test_acc'])}, rank {'?' if rank is None else f'{rank:.0f}'} of {total}; "
                     "the search curves show it epoch by epoch")
    lines += ["", note, "", "| method | CIFAR-10 test accuracy (%) |", "|---|---|"]
    lines += [f"| {name} | {_published_value(mean, std)} |" for name, mean, std in published]
    lines.append(f"| this run ({strategy}) | {_num(table['cifar10_test_acc'])} |")
    return lines


def nb201_curves(rows: Sequence[dict]) -> Figure | None:
    """Best cell found so far (tabular), the true test accuracy of the strategy's answer (both modes) and the
    ranking quality of the shared weights (weight sharing) per epoch, from metrics/search_epochs.csv; None when the
    rows hold none of them."""
    from ednas_core.viz._common import new_figure
    from ednas_core.viz.curves import _column

    epochs = _column(rows, "epoch")
    panels = []
    if any(math.isfinite(v) for v in _column(rows, "best_test_acc")):
        panels.append(("Best cell found so far", "accuracy (%)", ("best_valid_acc", "best_test_acc"),
                       {"optimum": NB201_OPTIMUM}))
    if any(math.isfinite(v) for v in _column(rows, "answer_test_acc")):
        panels.append(("The strategy's answer each epoch (its final architecture)", "test accuracy (%)",
                       ("answer_test_acc",), NB201_REFERENCE_LINES))
    if any(math.isfinite(v) for v in _column(rows, "rank_kendall_tau")):
        panels.append(("Ranking of the probe cells by the shared weights", "correlation / precision",
                       ("rank_kendall_tau", "rank_spearman_rho", "rank_top5_precision"), {}))
    if not panels:
        return None
    fig = new_figure(6.5 * len(panels), 4.0)
    for i, (title, ylabel, keys, lines) in enumerate(panels, 1):
        ax = fig.add_subplot(1, len(panels), i)
        for key in keys:
            values = _column(rows, key)
            ok = [math.isfinite(v) for v in values]
            ax.plot(epochs[ok], values[ok], marker="o", markersize=3, label=key)
        for (name, line), style in zip(lines.items(), ("--", ":")):
            low, high = ax.get_ylim()  # the line inside the axes, however far the curves are from it
            ax.set_ylim(min(low, line - 0.05 * (high - low)), max(high, line + 0.05 * (high - low)))
            ax.axhline(line, color="grey", linestyle=style, linewidth=1, label=f"{name} {line}")
        ax.set_title(title, fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return fig
