"""The published numbers the report compares a pipeline against: the EDNAS paper's (EDNAS_SPEC.md section 7)
and, for the other strategies of ednas_core/strategies, their own papers' CIFAR-10 and PTB results (as the
EDNAS paper's Tables 1 and 3 quote them; EDNAS_SPEC.md section 9). Also the metric that ranks the pipelines of
a task."""

from __future__ import annotations

from typing import Any, Mapping

# strategy -> task -> search cost in GPU-days (None: not published), parameters in millions, the task's result,
# and where the numbers come from.
PUBLISHED: dict[str, dict[str, dict[str, Any]]] = {
    "ednas": {
        "cifar10": {"search_gpu_days": 0.28, "params_m": 3.7, "test_error": 2.84,
                    "source": "EDNAS (Lee, Kim, Han), Table 1"},
        "imagenet": {"search_gpu_days": 3.67, "params_m": 4.7, "test_error": 26.9, "top5_error": 8.9,
                     "source": "EDNAS, Table 2"},
        "ptb": {"search_gpu_days": 0.11, "params_m": 23.0, "test_ppl": 59.45, "source": "EDNAS, Table 3"},
    },
    "random": {  # the EDNAS paper's own random-search rows
        "cifar10": {"search_gpu_days": 0.27, "params_m": 3.4, "test_error": 3.91, "source": "EDNAS, Table 1"},
        "ptb": {"search_gpu_days": 0.10, "params_m": 23.0, "test_ppl": 61.24, "source": "EDNAS, Table 3"},
    },
    "enas": {
        "cifar10": {"search_gpu_days": 0.5, "params_m": 4.6, "test_error": 2.89,
                    "source": "ENAS (Pham et al. 2018), Table 2, micro search + cutout; EDNAS Table 1"},
        "ptb": {"search_gpu_days": 0.5, "params_m": 24.0, "test_ppl": 55.8,
                "source": "ENAS, Table 1 (DARTS's re-run of the ENAS cell: 63.1); EDNAS Table 3"},
    },
    "nao": {
        "cifar10": {"search_gpu_days": 0.3, "params_m": 2.5, "test_error": 3.53,
                    "source": "NAO (Luo et al. 2018), Table 1, NAONet-WS; EDNAS Table 1"},
        "ptb": {"search_gpu_days": 0.4, "params_m": 27.0, "test_ppl": 56.6,
                "source": "NAO, Table 3, NAONet-WS; EDNAS Table 3"},
    },
    "evnas": {
        "cifar10": {"search_gpu_days": None, "params_m": 3.6, "test_error": 2.40,
                    "source": "EvNAS (Sinha and Chen, GECCO 2021), EvNAS-A in the authors' README"},
    },
}
# Display names of the strategies in the paper tables.
METHOD_NAMES = {"ednas": "EDNAS", "random": "random search", "enas": "ENAS", "nao": "NAONet-WS",
                "evnas": "EvNAS-A"}
TASK_NAMES = {"cifar10": "CIFAR-10", "imagenet": "ImageNet (direct search)", "ptb": "PTB"}

PAPER = PUBLISHED["ednas"]
PAPER_RANDOM = PUBLISHED["random"]


def published(strategy: str, task: str) -> dict[str, Any] | None:
    """The published numbers of `strategy` on `task`, or None when its paper has no such experiment."""
    return PUBLISHED.get(strategy, {}).get(task)


# NAS-Bench-201 (Dong and Yang, ICLR 2020), Table 5: the CIFAR-10 test accuracy (%) after the benchmark's 200 epochs
# of the cell each method found, (method, mean, std or None). Tabular: searches rewarded by the table's validation
# accuracy at 12,000 s of simulated training, mean and std over 500 runs. Weight sharing: the cell each method
# derived, looked up in the table (DrNAS: Chen et al. 2021, Table 3).
NB201_PUBLISHED: dict[str, tuple[tuple[str, float, float | None], ...]] = {
    "tabular": (("REA", 93.92, 0.30), ("REINFORCE", 93.85, 0.37), ("random search", 93.70, 0.36)),
    "weight_sharing": (("ENAS", 54.30, None), ("DARTS (1st order)", 54.30, None), ("GDAS", 93.61, None),
                       ("DrNAS", 94.36, None)),
}
NB201_OPTIMUM, NB201_SPACE_MEAN = 94.37, 87.06  # the space's best and mean CIFAR-10 test accuracy (%), published
# the lines a figure of NB201 test accuracies draws across (the best cell; what a uniform cell scores on average)
NB201_REFERENCE_LINES = {"optimum": NB201_OPTIMUM, "mean of the space": NB201_SPACE_MEAN}
# The published row each strategy's search corresponds to, per search mode (EDNAS: NB201's REINFORCE, a policy
# vector per edge trained by REINFORCE; ENAS: NB201's own ENAS, whose settings nb201.search.enas takes).
NB201_COUNTERPART = {"tabular": {"rea": "REA", "ednas": "REINFORCE", "random": "random search"},
                     "weight_sharing": {"enas": "ENAS"}}
NB201_MODE_KEY = "nb201.search.mode"


def nb201_published(strategy: str, mode: str) -> tuple[str, float, float | None] | None:
    """(method, CIFAR-10 test accuracy, std or None) of the NB201 row `strategy`'s search in `mode` corresponds
    to, or None where NB201 has none."""
    name = NB201_COUNTERPART.get(mode, {}).get(strategy)
    return next((row for row in NB201_PUBLISHED[mode] if row[0] == name), None) if name else None


def published_for(strategy: str, task: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """What a pipeline of `strategy` on `task` with flat `params` compares with: published(strategy, task), and on
    nb201 the NB201 row of its search mode as a test error (100 - accuracy) with its std ('method' names the row;
    no parameter count or search cost: the benchmark's cells vary, and its tabular budget is simulated time)."""
    if task != "nb201":
        return published(strategy, task)
    mode = str(params.get(NB201_MODE_KEY, "tabular"))
    row = nb201_published(strategy, mode)
    if row is None:
        return None
    name, accuracy, std = row
    return {"method": f"NB201 {name} ({mode.replace('_', ' ')})", "test_error": round(100.0 - accuracy, 2),
            "test_error_std": std, "params_m": None, "search_gpu_days": None,
            "source": f"NAS-Bench-201 (Dong and Yang, ICLR 2020), Table 5, {mode.replace('_', '-')} searches"}


def _result(task: str, row: dict[str, Any]) -> str:
    if "test_ppl" in row:
        return f"{row['test_ppl']:g} test perplexity"
    if "top5_error" in row:
        return f"{row['test_error']:g} / {row['top5_error']:g} top-1 / top-5 error"
    return f"{row['test_error']:g}% test error"


def paper_table(task: str, strategies: tuple[str, ...] = tuple(PUBLISHED)) -> list[tuple[str, ...]]:
    """(task name, method, search GPU-days, params, result, source) of every published row for `task`."""
    rows = []
    for strategy in strategies:
        row = published(strategy, task)
        if row is None:
            continue
        days = "-" if row["search_gpu_days"] is None else f"{row['search_gpu_days']:g}"
        rows.append((TASK_NAMES.get(task, task), METHOD_NAMES[strategy], days, f"{row['params_m']:g}M",
                     _result(task, row), row["source"]))
    return rows


PAPER_TABLE = [(task, *row) for task in ("cifar10", "imagenet", "ptb") for row in paper_table(task)]

# The metric that ranks pipelines of a task (lower is better for all of them).
MAIN_METRIC = {"ptb": "test_ppl", "markov": "test_ppl"}


def main_metric(task: str) -> str:
    return MAIN_METRIC.get(task, "test_error")
