"""The study across seeds of every pipeline in the tracking store, from the command line:

    python -m tools.study [--tracking-uri URI] [--task T] [--out DIR]

reads every run of the `ednas-<task>` experiments (default store: as the stages, tracking.tracking_uri(): the
repository's mlflow.db or MLFLOW_TRACKING_URI), groups the pipelines by their settings except the seed
(ednas_core/report/seed_study.py) and writes DIR/study.{md,csv,png} (default metrics/study/), and DIR/study_curves.png
where the study's tasks have per-epoch curves against a benchmark's truth (nb201); prints the table.
A store that cannot be read or holds no ednas pipelines is a one-line error, exit code 1.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path
from typing import Sequence

from ednas_core.config import TASKS
from ednas_core.report.comparison import pipelines_from_runs
from ednas_core.report.markdown import md_table
from ednas_core.report.seed_study import build_study, write_study
from ednas_core.tracking import server_unreachable

DEFAULT_OUT = Path("metrics/study")


class StoreError(RuntimeError):
    """The tracking store cannot be read or holds nothing to study."""


def check_store(uri: str) -> None:
    """Raises StoreError for a SQLite store whose file does not exist (reading would create an empty one) and for
    an http(s) server that does not answer /health within a few seconds (MLflow would retry for minutes)."""
    parsed = urllib.parse.urlparse(uri)
    if parsed.scheme == "sqlite":
        path = Path(uri[len("sqlite:///"):]) if uri.startswith("sqlite:///") else None
        if path is not None and str(path) != ":memory:" and not path.is_file():
            raise StoreError(f"no tracking database at {path} (tracking URI {uri}); run a pipeline first or pass "
                             "--tracking-uri")
    elif reason := server_unreachable(uri):
        raise StoreError(f"no MLflow server answers at {uri} ({reason})")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.study", description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: as the stages use)")
    parser.add_argument("--task", default="", choices=("",) + TASKS, help="only this task's pipelines")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for study.md, study.csv, study.png")
    args = parser.parse_args(argv)
    try:
        from ednas_core.tracking import ednas_runs, metric_histories_or_warning, tracking_uri

        uri = args.tracking_uri or tracking_uri()
        check_store(uri)
        try:
            runs = ednas_runs(uri)
        except Exception as err:  # MLflow's errors share no narrower base; say what failed in one line
            first = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise StoreError(f"cannot read the tracking store {uri}: {first}") from err
        pipelines = pipelines_from_runs(runs)
        if not pipelines:
            raise StoreError(f"no ednas pipelines in the tracking store {uri} (experiments ednas-<task>)")
        study = build_study(pipelines, args.task)
        if not study.groups:
            raise StoreError(f"no {args.task} pipelines in the tracking store {uri}")
        if study.curve_runs():
            study.curves, warning = metric_histories_or_warning(study.curve_runs(), study.curve_keys(), uri)
            if warning:
                print(f"study: warning: {warning}", file=sys.stderr)
        write_study(study, args.out / "study.md", args.out / "study.csv", args.out / "study.png",
                    curves_path=args.out / "study_curves.png")
    except (StoreError, OSError) as err:
        print(f"study: {str(err).splitlines()[0] if str(err) else type(err).__name__}", file=sys.stderr)
        return 1
    header, rows = study.table()
    print("\n".join(md_table(header, rows)))
    failed = study.failed()[1]
    print(f"study: {len(study.groups)} groups of {sum(len(g.pipelines) for g in study.groups)} pipelines"
          f"{f', {len(failed)} failed' if failed else ''}; wrote {args.out / 'study.md'}, study.csv, study.png"
          f"{', study_curves.png' if (args.out / 'study_curves.png').is_file() else ''}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
