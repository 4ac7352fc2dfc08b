"""The EDNAS paper's numbers the report compares a pipeline against (EDNAS_SPEC.md section 7), and the metric
that ranks the pipelines of a task."""

from __future__ import annotations

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
