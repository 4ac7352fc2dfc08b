"""What every stage shares: reading params.yaml once, one-line errors with an exit code, paths of the
pipeline's files, small atomic writers for metrics JSON/CSV, and progress display."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import yaml

from ednas_core.checkpoint import atomic_write_text
from ednas_core.config import ConfigError, Params, flatten, load_params
from ednas_core.data import DataError
from ednas_core.epochs import CheckpointMismatch
from ednas_core.strategies import STRATEGY_NAMES

PARAMS_FILE = Path("params.yaml")
PREPARED = Path("data/prepared")
SEARCH_DIR = Path("data/search")
DERIVE_DIR = Path("data/derive")
EVALUATE_DIR = Path("data/evaluate")
METRICS_DIR = Path("metrics")


class StageError(RuntimeError):
    """A stage cannot go on; the message is one line saying what is wrong and how to fix it."""


def read_params(path: Path = PARAMS_FILE) -> tuple[Params, str]:
    """Validated parameters and the file's text (for the pipeline id). Raises ConfigError on any bad key."""
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run the stage from the repository root")
    text = path.read_text()
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    return load_params(data or {}), text


def flat_params(params: Params) -> dict[str, Any]:
    """params.yaml as flat keys for MLflow, without the sections of strategies a task does not run (only the
    chosen strategy's section matters for a run: `search.enas.*` is left out when search.strategy is ednas)."""
    flat = flatten(asdict(params))
    unused = []
    for prefix in params.task_prefixes():
        chosen = flat.get(f"{prefix}search.strategy")
        unused += [f"{prefix}search.{name}." for name in STRATEGY_NAMES if name != chosen]
    return {k: v for k, v in flat.items() if not k.startswith(tuple(unused))}


def stage_tags(params: Params) -> dict[str, str]:
    """Tags of every stage run besides StageRun's own: the selected task's search strategy."""
    return {"ednas.strategy": params.task_config().search.strategy}


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=float) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


# Failures that are the user's to fix (bad params, data, genotype files, divergence): one line, no traceback.
# Anything else is a bug and keeps its traceback. EDNAS_DEBUG=1 shows tracebacks for all.
EXPECTED_ERRORS = (ConfigError, StageError, DataError, CheckpointMismatch, FloatingPointError, FileNotFoundError,
                   ValueError)


def run_stage(name: str, body: Callable[[], None]) -> None:
    """Runs a stage body; expected failures print one line `<stage>: error: ...` and exit 1."""
    try:
        body()
    except KeyboardInterrupt:
        print(f"{name}: interrupted; a resumable checkpoint is kept where the stage supports it", file=sys.stderr)
        sys.exit(130)
    except EXPECTED_ERRORS as err:
        if os.environ.get("EDNAS_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"{name}: error: {message}", file=sys.stderr)
        sys.exit(1)


class Progress:
    """Progress of a long stage: a bar with rate and ETA in a terminal; one line per epoch in CI and logs.
    Works as both a SearchCallback and a TrainCallback (same hook names)."""

    def __init__(self, stage: str, mode: str = "auto", headline: tuple[str, ...] = ()):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() and not os.environ.get("CI") else "lines"
        self.stage, self.mode, self.headline = stage, mode, headline
        self.bar = None
        self.start = time.monotonic()
        self.first_epoch: int | None = None

    def on_resume(self, history: list) -> None:
        if history and self.mode != "off":
            print(f"{self.stage}: resuming after epoch {history[-1].epoch + 1} of {history[-1].epochs}",
                  file=sys.stderr)

    def on_progress(self, phase: str, step: int, total: int) -> None:
        if self.mode != "bar":
            return
        from tqdm import tqdm

        if self.bar is None or self.bar.desc != f"{self.stage} {phase}":
            if self.bar is not None:
                self.bar.close()
            self.bar = tqdm(total=total, desc=f"{self.stage} {phase}", unit="batch", leave=False, file=sys.stderr)
        self.bar.update(step - self.bar.n)

    def on_epoch_end(self, report: Any) -> None:
        if self.mode == "off":
            return
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        if self.first_epoch is None:
            self.first_epoch = report.epoch
        done = report.epoch + 1 - self.first_epoch
        per_epoch = (time.monotonic() - self.start) / max(done, 1)
        eta = per_epoch * (report.epochs - report.epoch - 1)
        shown = " ".join(f"{k}={report.metrics[k]:.4g}" for k in self.headline
                         if k in report.metrics and math.isfinite(report.metrics[k]))
        print(f"{self.stage}: epoch {report.epoch + 1}/{report.epochs} {shown} "
              f"({per_epoch:.1f} s/epoch, ETA {_duration(eta)})", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"


def code_version() -> str:
    """Hash of the library's source: a checkpoint made by other code is not resumed."""
    import hashlib

    import ednas_core

    digest = hashlib.sha256()
    for path in sorted(Path(ednas_core.__file__).parent.rglob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def epoch_rows(history: list[Any]) -> list[dict[str, Any]]:
    """Per-epoch metrics as CSV rows (DVC plots), epoch numbered from 1; a value not measured (NaN, e.g. the
    baseline of a strategy without one) is an empty cell."""
    return [{"epoch": r.epoch + 1, **{k: round(v, 6) if math.isfinite(v) else "" for k, v in r.metrics.items()}}
            for r in history]
