"""MLflow tracking for the pipeline's stages: the only module of the library that knows MLflow and DVC.

- Tracking URI: MLFLOW_TRACKING_URI when set (a team server), else SQLite `mlflow.db` at the repository root
  as an absolute path. The root is DVC_ROOT when DVC runs the stage (also for `dvc exp run --temp/--queue`,
  whose working copy is under .dvc/tmp), so every experiment lands in the one database `mlflow ui` opens.
- One experiment per task (`ednas-<task>`), artifacts under <root>/mlruns; one run per stage execution, tagged
  with the stage, the DVC experiment name, the git revision and a pipeline id shared by one pipeline's stages.
- The first use of a new SQLite database is serialised with a file lock (concurrent schema creation fails),
  and writes retry briefly on "database is locked".
- Reading back: ednas_runs() returns every run of every `ednas-*` experiment (the report's comparison).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from .search import EpochReport, SearchCallback

T = TypeVar("T")
RETRY_SECONDS = 120.0


def repo_root() -> Path:
    """The original repository root: DVC_ROOT under DVC (also in temp experiment copies), else the cwd."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def tracking_uri(root: Path | None = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root or repo_root()) / 'mlflow.db'}"


def git_rev(cwd: Path | None = None) -> str:
    """The commit the run starts from: DVC's experiment baseline when DVC runs us, else HEAD."""
    if os.environ.get("DVC_EXP_BASELINE_REV"):
        return os.environ["DVC_EXP_BASELINE_REV"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def pipeline_id(params_text: str, rev: str) -> str:
    """Shared by the stages of one `dvc repro` / `dvc exp run`: same parameters, revision and experiment name."""
    key = "\n".join([os.environ.get("DVC_EXP_NAME", ""), rev, params_text])
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def _retry(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    deadline, delay = time.monotonic() + RETRY_SECONDS, 0.05
    while True:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # MlflowException / sqlalchemy OperationalError
            transient = "database is locked" in str(err) or "duplicate column" in str(err)
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


@contextmanager
def _db_lock(root: Path) -> Iterator[None]:
    """Serialises the creation of the SQLite database and of experiments across processes."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        yield
        return
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".mlflow.db.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _one_line(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".strip()
    return text.splitlines()[0][:4000] if text else type(err).__name__


class StageRun:
    """One MLflow run for one execution of a pipeline stage; use as a context manager. On an exception
    the run is marked FAILED with the error as a tag, and the exception propagates."""

    def __init__(self, stage: str, task: str, params: dict[str, Any], params_text: str,
                 root: Path | None = None, extra_tags: dict[str, str] | None = None):
        from mlflow.tracking import MlflowClient

        self.root = root or repo_root()
        self.stage = stage
        rev = git_rev(Path.cwd())
        self.tags = {
            "dvc.stage": os.environ.get("DVC_STAGE", stage),
            "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
            "git.rev": rev,
            "mlflow.source.git.commit": rev,
            "ednas.pipeline_id": pipeline_id(params_text, rev),
            "ednas.task": task,
            "ednas.stage": stage,
            "mlflow.runName": f"{stage}" + (f" ({os.environ['DVC_EXP_NAME']})" if os.environ.get("DVC_EXP_NAME") else ""),
            **(extra_tags or {}),
        }
        with _db_lock(self.root):
            self.client = MlflowClient(tracking_uri=tracking_uri(self.root))
            name = f"ednas-{task}"
            experiment = _retry(self.client.get_experiment_by_name, name)
            if experiment is None:
                location = None if os.environ.get("MLFLOW_TRACKING_URI") else (self.root / "mlruns").as_uri()
                self.experiment_id = _retry(self.client.create_experiment, name, artifact_location=location)
            else:
                self.experiment_id = experiment.experiment_id
        self.params = {k: str(v) for k, v in params.items()}
        self.run_id = ""

    def __enter__(self) -> "StageRun":
        run = _retry(self.client.create_run, self.experiment_id, tags=self.tags)
        self.run_id = run.info.run_id
        self.log_params(self.params)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            _retry(self.client.set_terminated, self.run_id, "FINISHED")
            return
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        try:
            _retry(self.client.set_tag, self.run_id, "error", _one_line(exc))
            _retry(self.client.set_terminated, self.run_id, status)
        except Exception:  # never hide the stage's own error behind a tracking one
            pass

    # --- logging ------------------------------------------------------------------------------------------

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            _retry(self.client.log_batch, self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        _retry(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items() if np.isfinite(v)]
        for i in range(0, len(items), 200):
            _retry(self.client.log_batch, self.run_id, metrics=items[i : i + 200])

    def log_dict(self, data: Any, artifact_file: str) -> None:
        _retry(self.client.log_dict, self.run_id, data, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        _retry(self.client.log_text, self.run_id, text, artifact_file)

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        _retry(self.client.log_artifact, self.run_id, str(path), artifact_path)

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        _retry(self.client.log_figure, self.run_id, figure, artifact_file)


def ednas_runs(uri: str | None = None) -> list[Any]:
    """Every run of every `ednas-*` experiment in the tracking store (tracking_uri() unless `uri`), all pages."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri or tracking_uri())
    experiments = [e for e in _retry(client.search_experiments) if e.name.startswith("ednas-")]
    if not experiments:
        return []
    runs, token = [], None
    while True:
        page = _retry(client.search_runs, [e.experiment_id for e in experiments], max_results=1000,
                      page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def policy_json(probabilities: dict[str, np.ndarray]) -> dict[str, list]:
    return {k: np.round(v, 6).tolist() for k, v in probabilities.items()}


class MLflowSearchLogger(SearchCallback):
    """Per-epoch search metrics and, every `policy_every` epochs, the policy vectors (softmax) as JSON."""

    def __init__(self, run: StageRun, policy_every: int = 1):
        self.run = run
        self.policy_every = policy_every

    def on_resume(self, history: list[EpochReport]) -> None:
        for report in history:  # a resumed search logs to a new run: give it the epochs already done
            self.on_epoch_end(report)

    def on_epoch_end(self, report: EpochReport) -> None:
        step = report.epoch + 1
        self.run.log_metrics(report.metrics, step=step)
        if step % self.policy_every == 0 or step == report.epochs:
            self.run.log_dict({"epoch": step, **policy_json(report.probabilities),
                               **{f"{k}_counts": v.tolist() for k, v in report.counts.items()}},
                              f"policy/epoch_{step:04d}.json")


class MLflowPolicyFigures(SearchCallback):
    """Every `every` epochs and at the last one, the policy heatmaps (ednas_core.viz.policy_heatmaps) as a PNG
    artifact 'figures/policy_epoch_NNNN.png'. One figure per N epochs keeps the cost low (about a second)."""

    def __init__(self, run: StageRun, every: int = 10, space: Any = None,
                 title: str = "EDNAS policy vectors (softmax)"):
        if every < 1:
            raise ValueError(f"heatmap_every must be >= 1, got {every}")
        self.run = run
        self.every = every
        self.space = space
        self.title = title

    def due(self, step: int, epochs: int) -> bool:
        return step % self.every == 0 or step == epochs

    def on_resume(self, history: list[EpochReport]) -> None:
        for report in history:  # the resumed search logs to a new run: give it the figures already due
            self.on_epoch_end(report)

    def on_epoch_end(self, report: EpochReport) -> None:
        step = report.epoch + 1
        if not self.due(step, report.epochs):
            return
        from .viz import policy_heatmaps

        figure = policy_heatmaps(report.probabilities, self.space, epoch=step, title=self.title)
        try:
            self.run.log_figure(figure, f"figures/policy_epoch_{step:04d}.png")
        finally:
            figure.clear()
