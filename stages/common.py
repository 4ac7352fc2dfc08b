"""What every stage shares: reading params.yaml once, one-line errors with an exit code, paths of the
pipeline's files, small atomic writers for metrics JSON/CSV, and progress display."""

from __future__ import annotations

import csv
import errno
import io
import json
import math
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, Callable

import torch

from ruamel.yaml import YAML, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ednas_core import distributed
from ednas_core.checkpoint import atomic_write_text
from ednas_core.config import TASKS, ConfigError, Params, TaskConfig, flatten, load_params
from ednas_core.data import DataError
from ednas_core.epochs import CheckpointMismatch, NonFiniteError
from ednas_core.process_lifetime import end_with_parent
from ednas_core.strategies import STRATEGY_NAMES
from ednas_core.tracking import TrackingUnavailable

PARAMS_FILE = Path("params.yaml")
PREPARED = Path("data/prepared")
SEARCH_DIR = Path("data/search")
DERIVE_DIR = Path("data/derive")
EVALUATE_DIR = Path("data/evaluate")
METRICS_DIR = Path("metrics")


class StageError(RuntimeError):
    """A stage cannot go on; the message is one line saying what is wrong and how to fix it."""


def read_params(path: Path = PARAMS_FILE) -> tuple[Params, str]:
    """Validated parameters and the file's text (for the pipeline id). Raises ConfigError on any bad key.

    Read as DVC reads it (ruamel.yaml, YAML 1.2, typ="safe": dvc/utils/serialize/_yaml.py), so that a stage and
    `dvc params diff` / `dvc exp run -S` see the same values: `amp: yes` is the string 'yes', not true."""
    if not path.is_file():
        raise ConfigError(f"{path}: not found; run the stage from the repository root")
    text = path.read_text()
    yaml = YAML(typ="safe")
    try:
        duplicate = _duplicate_key(yaml.compose(text))
        if duplicate is None:
            data = yaml.load(text)
    except YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}; fix the syntax") from None
    if duplicate is not None:
        key, line, first = duplicate
        raise ConfigError(f"{key}: duplicate key at line {line} of {path} (first at line {first}); keep one of them")
    return load_params(data or {}), text


def _duplicate_key(node: Node | None, prefix: str = "") -> tuple[str, int, int] | None:
    """The first key given twice in one mapping of a composed YAML document: (dotted key, line, first line)."""
    if isinstance(node, MappingNode):
        seen: dict[tuple[str, str], int] = {}
        for key, value in node.value:
            name = f"{prefix}{key.value}" if isinstance(key, ScalarNode) else f"{prefix}{key.tag}"
            ident = (key.tag, str(key.value))
            if ident in seen:
                return name, key.start_mark.line + 1, seen[ident]
            seen[ident] = key.start_mark.line + 1
            found = _duplicate_key(value, name + ".")
            if found:
                return found
    elif isinstance(node, SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicate_key(item, f"{prefix.rstrip('.')}[{index}].")
            if found:
                return found
    return None


TASK_SECTIONS = tuple(f.name for f in fields(TaskConfig))  # search, derive, evaluate: CIFAR-10's at the top level


def key_task(key: str) -> str | None:
    """The task whose sections hold a dotted key of params.yaml (search.lr: cifar10, digits.search.lr: digits);
    None for what every task shares (task, runtime, data, tracking)."""
    head = key.split(".", 1)[0]
    if head in TASKS and head != "cifar10":
        return head
    return "cifar10" if head in TASK_SECTIONS else None


def flat_params(params: Params) -> dict[str, Any]:
    """The params.yaml keys a run of the selected task reads, flat, for MLflow: `task`, the sections every task
    shares (runtime, data, tracking) and the task's own search/derive/evaluate (top level for CIFAR-10,
    `digits.*` for digits: a digits run has no `search.lr` of CIFAR-10 nor `ptb.*`), of whose strategy sections
    only the chosen one (`search.enas.*` is left out when search.strategy is ednas)."""
    flat = flatten(asdict(params))
    prefix = params.task_prefix()
    chosen = flat.get(f"{prefix}search.strategy")
    unused = tuple(f"{prefix}search.{name}." for name in STRATEGY_NAMES if name != chosen)
    return {k: v for k, v in flat.items() if key_task(k) in (None, params.task) and not k.startswith(unused)}


def stage_tags(params: Params) -> dict[str, str]:
    """Tags of every stage run besides StageRun's own: the selected task's search strategy, and the GPU that
    runtime.device auto claimed for this process (ednas_core.gpu_claim), when it did."""
    from ednas_core.runtime import claimed_gpu

    gpu = claimed_gpu()
    return {"ednas.strategy": params.task_config().search.strategy, **({"ednas.gpu": gpu.describe()} if gpu else {})}


def write_json(path: Path, data: dict[str, Any]) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False, default=float) + "\n")


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """The rows as CSV, atomically; the columns are every key of any row in the order they first appear, a key a
    row lacks an empty cell (epochs of a search resumed from a checkpoint of an earlier version measured less)."""
    if not rows:
        raise ValueError(f"no rows to write to {path}")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)), restval="")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def replace_folder(new: Path, target: Path) -> None:
    """Puts the completed folder `new` in place of `target` (two renames in the same parent, then the old copy is
    deleted), so that a stage's folder output never mixes files of two runs and stays whole if the stage fails."""
    old = target.with_name(f".{target.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        os.replace(target, old)
    os.replace(new, target)
    shutil.rmtree(old, ignore_errors=True)


# Failures that are the user's to fix (bad params, data, genotype files, divergence): one line, no traceback.
# Anything else is a bug and keeps its traceback. EDNAS_DEBUG=1 shows tracebacks for all.
EXPECTED_ERRORS = (ConfigError, StageError, DataError, CheckpointMismatch, FloatingPointError, FileNotFoundError,
                   ValueError, TrackingUnavailable)


# The folders each stage writes into: checked for writing before the stage starts any work.
STAGE_OUTPUTS: dict[str, tuple[Path, ...]] = {
    "prepare-data": (PREPARED, METRICS_DIR),
    "search": (SEARCH_DIR, METRICS_DIR),
    "derive": (DERIVE_DIR, METRICS_DIR),
    "evaluate": (EVALUATE_DIR, METRICS_DIR),
    "report": (METRICS_DIR,),
}

# What to lower when a stage runs out of memory (the keys are under the task's section of params.yaml).
MEMORY_HINTS = {
    "search": "search.batch_size / policy_batch_size, or the network (init_channels, layers; emb, hidden for text)",
    "derive": "derive.batch_size",
    "evaluate": "evaluate.batch_size, or the network (init_channels, layers; emb, hidden for text)",
}

# Errors of the file system that are the user's to fix, not bugs.
STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                  errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
                  errno.EPERM: "operation not permitted"}


def check_writable(folders: tuple[Path, ...]) -> None:
    """Fails with one line naming the first folder a stage cannot create or write a file in (probing the folder,
    or the nearest existing folder above it: nothing is created)."""
    for folder in folders:
        existing = folder
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        try:
            fd, probe = tempfile.mkstemp(prefix=".write-check.", dir=existing)
            os.close(fd)
            os.unlink(probe)
        except OSError as err:
            raise StageError(f"{folder}/ is not writable ({_storage_reason(err)}); free space or fix the "
                             "folder's permissions / mount, then rerun") from None


def _storage_reason(err: OSError) -> str:
    return STORAGE_ERRNOS.get(err.errno or 0, err.strerror or type(err).__name__)


def _out_of_memory(err: BaseException) -> bool:
    if isinstance(err, torch.OutOfMemoryError):
        return True
    text = str(err)
    return isinstance(err, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text)


def run_stage(name: str, body: Callable[[], None]) -> None:
    """Runs a stage body; expected failures print one line `<stage>: error: ...` and exit 1: bad params, data or
    state files, a folder the stage cannot write (checked first; a disk that fills up later is reported with the
    file), and a network too large for the memory (with the settings to lower). Run by DVC (DVC_STAGE set), the
    stage ends when DVC's process does (process_lifetime: `dvc queue kill --force` ends DVC, not its stage)."""
    if os.environ.get("DVC_STAGE"):
        end_with_parent()
    try:
        try:
            check_writable(STAGE_OUTPUTS.get(name, ()))
            body()
        finally:
            distributed.shutdown()  # a rank under torchrun leaves its process group (no-op otherwise)
    except KeyboardInterrupt:
        print(f"{name}: interrupted; a resumable checkpoint is kept where the stage supports it", file=sys.stderr)
        sys.exit(130)
    except EXPECTED_ERRORS as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        _fail(name, under_task(message) if isinstance(err, NonFiniteError) else message)
    except OSError as err:
        if err.errno not in STORAGE_ERRNOS:
            raise
        where = Path(err.filename).parent if err.filename else "an output folder"
        _fail(name, f"cannot write {err.filename or 'a file'} ({_storage_reason(err)}); free space in {where}/ "
                    "or fix its permissions, then rerun (a resumable checkpoint is kept where one was written)")
    except (RuntimeError, MemoryError) as err:
        if not (_out_of_memory(err) or isinstance(err, MemoryError)):
            raise
        device = "the GPU" if isinstance(err, torch.OutOfMemoryError) else "host memory"
        _fail(name, f"out of memory ({device}): the network or batch does not fit; lower {_memory_hint(name)} "
                    "in params.yaml")


def relaunched(stage: str, params: Params) -> bool:
    """runtime.gpus > 1 outside torchrun: runs `python -m stages.<stage>` under torchrun (one process per GPU, or
    gloo processes with runtime.device cpu) and returns True once it has succeeded (a failure exits with its
    status; each rank printed its error line). False: this process does the work (one process, or a rank that
    torchrun started, the stage's own re-launch or the user's multi-node torchrun command)."""
    code = distributed.maybe_relaunch(f"stages.{stage}", params.runtime.gpus, params.runtime.device)
    if code is None:
        return False
    if code:
        sys.exit(code)
    return True


class RankRun:
    """Stands in for the MLflow StageRun on ranks other than 0 of a multi-process stage: every call does nothing
    (rank 0 alone logs and writes)."""

    run_id = None

    def __enter__(self) -> "RankRun":
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


def _memory_hint(stage: str) -> str:
    """The settings to lower, under the selected task's section of params.yaml (digits.search.batch_size)."""
    return under_task(MEMORY_HINTS.get(stage, "the batch sizes"))


def under_task(text: str) -> str:
    """`text` with the keys it names (search.lr, evaluate.grad_clip: the library's messages name them as
    CIFAR-10's) under the selected task's section of params.yaml (ptb.search.lr)."""
    try:
        prefix = read_params()[0].task_prefix()
    except Exception:  # a courtesy: params.yaml was valid when the stage started
        prefix = ""
    return re.sub(r"(?<![\w.])(search|derive|evaluate)\.(?=\w)", lambda m: f"{prefix}{m.group(0)}", text)


def _fail(name: str, message: str) -> None:
    if os.environ.get("EDNAS_DEBUG"):
        raise
    print(f"{name}: error: {message}", file=sys.stderr)
    sys.exit(1)


class Progress:
    """Progress of a long stage; works as both a SearchCallback and a TrainCallback (same hook names).

    The loops call on_progress at the start of every phase (step 0) and after each of its steps; that only notes
    the step and the time (nothing is read from the device), and the display follows the clock, not the steps: in
    a terminal a bar redrawn at most every `refresh_s` seconds, with the phase's true rate (steps done / time since
    the phase began) and its ETA; in CI and logs (`CI` set or stderr not a terminal) a line at most every
    `line_every_s` seconds; in both, one line per epoch with the time per epoch and the stage's ETA."""

    refresh_s = 1.0
    line_every_s = 30.0

    def __init__(self, stage: str, mode: str = "auto", headline: tuple[str, ...] = ()):
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() and not os.environ.get("CI") else "lines"
        self.stage, self.mode, self.headline = stage, mode, headline
        self.start = time.monotonic()
        self.first_epoch: int | None = None
        self.epoch, self.epochs = 0, None  # the epoch under way (from 0); the count, once a report or resume says
        self.phase: str | None = None
        self.unit = "batch"  # what a step of the phase is
        self.step = self.total = self.first_step = 0
        self.phase_start = self.start
        self.drawn_at = -math.inf  # bar: when it was last drawn
        self.bar_chars = 0  # bar: its length on screen, to clear it
        self.line_at = self.start  # lines: when the last line was printed

    def on_resume(self, history: list) -> None:
        if history:
            self.epoch, self.epochs = history[-1].epoch + 1, history[-1].epochs
        if history and self.mode != "off":
            print(f"{self.stage}: resuming after epoch {history[-1].epoch + 1} of {history[-1].epochs}",
                  file=sys.stderr)

    def on_progress(self, phase: str, step: int, total: int, unit: str = "batch") -> None:
        if self.mode == "off":
            return
        now = time.monotonic()
        if step == 0 or phase != self.phase or step < self.step or total != self.total:  # a phase begins
            self.phase, self.total, self.first_step, self.phase_start = phase, total, step, now
            self.unit, self.drawn_at = unit, -math.inf
        self.step = step
        if self.mode == "bar":
            if now - self.drawn_at >= self.refresh_s or step == total:
                self._draw(now)
        elif now - self.line_at >= self.line_every_s:
            rate, eta = self.rate(now)
            if rate:  # not at the very start of a phase
                print(f"{self.stage}: {self._epoch_label()} {phase} {step}/{total} "
                      f"({rate:.3g} {self.unit}/s, {phase} ETA {_duration(eta)})", file=sys.stderr, flush=True)
                self.line_at = now

    def rate(self, now: float) -> tuple[float | None, float]:
        """Steps per second over the phase so far, and the seconds the rest of the phase will take at that rate."""
        done, elapsed = self.step - self.first_step, now - self.phase_start
        if done <= 0 or elapsed <= 0:
            return None, math.nan
        rate = done / elapsed
        return rate, (self.total - self.step) / rate

    def _epoch_label(self) -> str:
        return f"epoch {self.epoch + 1}" + (f"/{self.epochs}" if self.epochs else "")

    def _draw(self, now: float) -> None:
        from tqdm import tqdm

        width = min(shutil.get_terminal_size((100, 20)).columns - 1, 120)
        text = tqdm.format_meter(self.step, self.total, now - self.phase_start, ncols=width, unit=self.unit,
                                 prefix=f"{self.stage} {self._epoch_label()} {self.phase}", rate=self.rate(now)[0])
        sys.stderr.write("\r" + text + " " * max(self.bar_chars - len(text), 0))
        sys.stderr.flush()
        self.bar_chars, self.drawn_at = len(text), now

    def _clear(self) -> None:
        if self.bar_chars:
            sys.stderr.write("\r" + " " * self.bar_chars + "\r")
            self.bar_chars = 0

    def on_epoch_end(self, report: Any) -> None:
        if self.mode == "off":
            return
        self._clear()
        now = time.monotonic()
        self.epoch, self.epochs, self.phase, self.step = report.epoch + 1, report.epochs, None, 0
        if self.first_epoch is None:
            self.first_epoch = report.epoch
        done = report.epoch + 1 - self.first_epoch
        per_epoch = (now - self.start) / max(done, 1)
        eta = per_epoch * (report.epochs - report.epoch - 1)
        shown = " ".join(f"{k}={report.metrics[k]:.4g}" for k in self.headline
                         if k in report.metrics and math.isfinite(report.metrics[k]))
        print(f"{self.stage}: epoch {report.epoch + 1}/{report.epochs} {shown} "
              f"({per_epoch:.1f} s/epoch, ETA {_duration(eta)})", file=sys.stderr, flush=True)
        self.line_at = now


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
