"""The NAS-Bench-201 tabular study (ednas_core/study.py) from the command line:

    python -m tools.nb201_study --table DIR --seeds 100 --strategies ednas,random,rea --out DIR [--params params.yaml]

runs `--seeds` seeds (0..N-1) of every strategy in this process against the table in DIR (the two published
files or one nb201.csv: ednas_core/data/nb201_table.py), and writes DIR/study.{csv,md,png}; prints the table.
Strategy settings: params.yaml's nb201.search section with --params, else its defaults built in code
(ednas_core.config.nb201_search_defaults); --budget overrides search.budget. Searches run one after another on
one CPU thread (--threads). Errors are one line, exit code 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path
from typing import Any, Sequence

import torch

from ednas_core.config import ConfigError, nb201_search_defaults
from ednas_core.data import DataError
from ednas_core.data.nb201_table import NB201Table
from ednas_core.strategies import STRATEGIES
from ednas_core.study import run_study, summary_table, write_study


def search_config(params: Path | None) -> Any:
    """nb201.search of params.yaml (validated), or its defaults."""
    if params is None:
        return nb201_search_defaults()
    from stages.common import read_params  # reads params.yaml as DVC does

    return read_params(params)[0].nb201.search


def parse_strategies(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in STRATEGIES]
    if not names or unknown:
        what = f"unknown strategy {unknown[0]!r}" if unknown else "no strategy given"
        raise ConfigError(f"--strategies: {what}; known: {', '.join(STRATEGIES)}")
    return list(dict.fromkeys(names))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.nb201_study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--table", type=Path, required=True, help="folder with the NAS-Bench-201 table")
    parser.add_argument("--seeds", type=int, default=100, help="seeds per strategy (0..N-1)")
    parser.add_argument("--strategies", default="ednas,random,rea", help="comma-separated strategy names")
    parser.add_argument("--out", type=Path, required=True, help="folder for study.csv, study.md, study.png")
    parser.add_argument("--params", type=Path, default=None, help="params.yaml whose nb201.search section to use")
    parser.add_argument("--budget", type=int, default=None, help="queries per search (default: search.budget)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: the searches' tensors "
                        "are tiny, and more threads only contend, many times slower on a busy machine)")
    args = parser.parse_args(argv)
    try:
        if args.threads < 1:
            raise ConfigError(f"--threads: got {args.threads}; expected at least 1")
        torch.set_num_threads(args.threads)
        if args.seeds < 1:
            raise ConfigError(f"--seeds: got {args.seeds}; expected at least 1")
        if args.budget is not None and args.budget < 1:
            raise ConfigError(f"--budget: got {args.budget}; expected at least 1")
        names = parse_strategies(args.strategies)
        config = search_config(args.params)
        if args.budget is not None:
            config = dataclasses.replace(config, budget=args.budget)
        table = NB201Table.load(args.table)
        seeds = list(range(args.seeds))
        results, seconds = run_study(table, config, names, seeds, on_strategy=lambda name, s: print(
            f"nb201 study: {name}: {args.seeds} seeds in {s:.1f} s", file=sys.stderr, flush=True))
        summaries = write_study(results, seconds, table, config, seeds, args.out)
    except (ConfigError, DataError, RuntimeError, ValueError, OSError) as err:
        print(f"nb201 study: {str(err).splitlines()[0] if str(err) else type(err).__name__}", file=sys.stderr)
        return 2
    print(summary_table(summaries), end="")
    print(f"nb201 study: wrote {args.out / 'study.csv'}, study.md, study.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
