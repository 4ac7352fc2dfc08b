"""Wall time of the NAS-Bench-201 tabular study (ednas_core/study.py) per strategy:

    python -m benchmarks.nb201_study --table DIR [--seeds 100] [--strategies ednas,random,rea] [--params params.yaml]

runs the study's searches (tabular_search over the table, on the CPU, in this process) seed after seed for each
strategy and prints seconds in all, per seed and per query, beside the mean best-found test accuracy (so that
a faster strategy is seen to do the same work). The table is loaded once, before the clock starts.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ednas_core.data.nb201_table import NB201Table
from ednas_core.study import run_seeds


def time_strategies(table: NB201Table, search_config: Any, strategies: Sequence[str],
                    seeds: Sequence[int]) -> list[dict[str, float | str]]:
    rows = []
    for name in strategies:
        start = time.perf_counter()
        results = run_seeds(table, search_config, name, seeds)
        seconds = time.perf_counter() - start
        queries = sum(r.queries for r in results)
        rows.append({"strategy": name, "seeds": len(results), "seconds": seconds,
                     "ms_per_seed": 1000 * seconds / len(results), "us_per_query": 1e6 * seconds / queries,
                     "mean_test_acc": float(np.mean([r.best_test_acc for r in results]))})
    return rows


def format_rows(rows: Sequence[dict[str, float | str]]) -> str:
    lines = [f"{'strategy':<10} {'seeds':>5} {'wall s':>8} {'ms/seed':>9} {'us/query':>9} {'test acc':>9}"]
    for r in rows:
        lines.append(f"{r['strategy']:<10} {r['seeds']:>5} {r['seconds']:>8.2f} {r['ms_per_seed']:>9.1f} "
                     f"{r['us_per_query']:>9.0f} {r['mean_test_acc']:>9.2f}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    from tools.nb201_study import parse_strategies, search_config

    parser = argparse.ArgumentParser(prog="python -m benchmarks.nb201_study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--strategies", default="ednas,random,rea")
    parser.add_argument("--params", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (the study's default: 1)")
    args = parser.parse_args(argv)
    torch.set_num_threads(max(1, args.threads))
    try:
        names = parse_strategies(args.strategies)
        config = search_config(args.params)
        table = NB201Table.load(args.table)
    except (ValueError, RuntimeError, OSError) as err:
        print(f"nb201 study benchmark: {str(err).splitlines()[0]}", file=sys.stderr)
        return 2
    print(f"NB201 tabular study: {args.seeds} seeds x {config.budget} queries per strategy, CPU, one process, "
          f"{torch.get_num_threads()} thread(s)")
    print(format_rows(time_strategies(table, config, names, range(args.seeds))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
