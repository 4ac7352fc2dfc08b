"""MLflow tracking for the pipeline's stages: the only module of the library that knows MLflow and DVC.

- Tracking URI: MLFLOW_TRACKING_URI when set (a team server), else SQLite `mlflow.db` at the repository root
  as an absolute path. The root is DVC_ROOT when DVC runs the stage (also for `dvc exp run --temp/--queue`,
  whose working copy is under .dvc/tmp), so every experiment lands in the one database `mlflow ui` opens.
- One experiment per task (`ednas-<task>`), artifacts under <root>/mlruns; one run per stage execution, tagged
  with the stage, the DVC experiment name, the git revision and a pipeline id shared by one pipeline's stages.
- A stage with a resumable checkpoint records its run id beside it (mlflow_run.json). A stage killed outright
  (SIGKILL, power loss) leaves its run RUNNING; when the stage resumes that checkpoint, it continues that run (its
  metric history goes on, no step logged twice). Otherwise a new run starts, tagged `ednas.resumed_from_run`
  when it resumes a checkpoint whose run is gone or closed, and every RUNNING run of the same stage and working
  directory whose process is dead (host and pid tags) is closed as KILLED.
- The first use of a new SQLite database is serialised with a file lock (concurrent schema creation fails),
  and writes retry briefly on "database is locked".
- Reading back: ednas_runs() returns every run of every `ednas-*` experiment (the report's comparison).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

import numpy as np

from .checkpoint import atomic_write_text
from .search import EpochReport, SearchCallback

T = TypeVar("T")
RETRY_SECONDS = 120.0
RUN_FILE = "mlflow_run.json"  # beside a stage's checkpoint: the run that checkpoint's epochs were logged to


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


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host still runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no procfs (macOS) or it just ended
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _ended(run: Any, host: str) -> bool:
    """Whether the process that opened `run` has ended; unknown (no pid tag, another host) counts as running."""
    tags = run.data.tags
    pid = tags.get("ednas.pid", "")
    return tags.get("ednas.host") == host and pid.isdigit() and int(pid) != os.getpid() and not process_alive(int(pid))


class StageRun:
    """One MLflow run for one execution of a pipeline stage; use as a context manager. On an exception
    the run is marked FAILED with the error as a tag, and the exception propagates.

    With `checkpoint` (the stage's resumable checkpoint file), the run id is kept in mlflow_run.json beside it
    until the stage finishes; a later execution that finds the checkpoint continues that run when its process was
    killed (it is still RUNNING, same parameters), see the module's docstring. A stage that then discards the
    checkpoint calls restart()."""

    def __init__(self, stage: str, task: str, params: dict[str, Any], params_text: str,
                 root: Path | None = None, extra_tags: dict[str, str] | None = None,
                 checkpoint: Path | None = None):
        from mlflow.tracking import MlflowClient

        self.root = root or repo_root()
        self.stage = stage
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.run_file = self.checkpoint.with_name(RUN_FILE) if self.checkpoint else None
        self.host, self.workdir = socket.gethostname(), str(Path.cwd().resolve())
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
            "ednas.host": self.host,
            "ednas.pid": str(os.getpid()),
            "ednas.workdir": self.workdir,
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
        self.continued = False                   # True: this execution goes on with a killed execution's run
        self.resumed_from = ""                   # else: the run of the checkpoint found, if it could not go on
        self._logged: set[tuple[str, int]] = set()  # (metric, step) the continued run already holds
        self._tags_set: dict[str, str] = {}         # set_tags / log_dict / log_text so far: restart() replays them
        self._files_logged: dict[str, tuple[str, Any]] = {}

    def __enter__(self) -> "StageRun":
        previous = self._recorded_run() if self.checkpoint is not None and self.checkpoint.exists() else ""
        run = self._continuable(previous) if previous else None
        if run is not None:
            self.run_id, self.continued = run.info.run_id, True
            self._logged = {(key, m.step) for key in run.data.metrics
                            for m in _retry(self.client.get_metric_history, self.run_id, key)}
            self.set_tags(self.tags)  # this execution's process, revision and pipeline
        else:
            self._start({"ednas.resumed_from_run": previous} if previous else {})
            self.resumed_from = previous
        self._close_abandoned()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            _retry(self.client.set_terminated, self.run_id, "FINISHED")
            if self.run_file is not None:
                self.run_file.unlink(missing_ok=True)
            return
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        if self.run_file is not None and not self.checkpoint.exists():
            self.run_file.unlink(missing_ok=True)  # no checkpoint to resume: nothing will look for this run
        try:
            _retry(self.client.set_tag, self.run_id, "error", _one_line(exc))
            _retry(self.client.set_terminated, self.run_id, status)
        except Exception:  # never hide the stage's own error behind a tracking one
            pass

    def restart(self) -> None:
        """The stage discards its checkpoint and starts over (call it before any epoch is logged): a continued
        run (it holds the discarded epochs) is closed as KILLED and a new run, given the params, tags, dicts and
        texts logged so far, takes its place; a new run just loses its `ednas.resumed_from_run` tag."""
        if not self.continued:
            if self.resumed_from:
                _retry(self.client.delete_tag, self.run_id, "ednas.resumed_from_run")
                self.resumed_from = ""
            return
        old = self.run_id
        self._start({})
        if self._tags_set:
            self.set_tags(self._tags_set)
        for artifact_file, (kind, data) in self._files_logged.items():
            (self.log_dict if kind == "dict" else self.log_text)(data, artifact_file)
        _retry(self.client.set_tag, old, "error", f"its checkpoint was discarded (other settings or code); "
                                                  f"the stage started over in run {self.run_id}")
        _retry(self.client.set_terminated, old, "KILLED")

    def _start(self, tags: dict[str, str]) -> None:
        run = _retry(self.client.create_run, self.experiment_id, tags={**self.tags, **tags})
        self.run_id, self.continued, self._logged = run.info.run_id, False, set()
        if self.run_file is not None:
            atomic_write_text(self.run_file, json.dumps({"run_id": self.run_id, "tracking_uri": self.uri,
                                                         "experiment_id": self.experiment_id}) + "\n")
        self.log_params(self.params)

    @property
    def uri(self) -> str:
        return tracking_uri(self.root)

    def _recorded_run(self) -> str:
        """The run id in mlflow_run.json when it names a run of this tracking store and experiment, else ''."""
        try:
            record = json.loads(self.run_file.read_text())
        except (OSError, ValueError):
            return ""
        if not isinstance(record, dict) or record.get("tracking_uri") != self.uri \
                or record.get("experiment_id") != self.experiment_id:
            return ""
        return str(record.get("run_id") or "")

    def _continuable(self, run_id: str) -> Any:
        """The run `run_id` when a killed execution of this stage left it RUNNING with the same parameters."""
        try:
            run = _retry(self.client.get_run, run_id)
        except Exception:  # MlflowException: no such run (deleted with `mlflow gc`, or another store)
            return None
        same = run.info.lifecycle_stage == "active" and run.info.status == "RUNNING" \
            and run.data.tags.get("ednas.stage") == self.stage and run.data.params == self.params
        return run if same and _ended(run, self.host) else None

    def _close_abandoned(self) -> None:
        """Closes as KILLED the RUNNING runs of this stage and working directory whose process has ended."""
        runs = _retry(self.client.search_runs, [self.experiment_id],
                      filter_string=f"attributes.status = 'RUNNING' and tags.`ednas.stage` = '{self.stage}'")
        for run in runs:
            if run.info.run_id != self.run_id and run.data.tags.get("ednas.workdir") == self.workdir \
                    and _ended(run, self.host):
                _retry(self.client.set_tag, run.info.run_id, "error",
                       f"its process ended without closing the run (killed); closed by run {self.run_id}")
                _retry(self.client.set_terminated, run.info.run_id, "KILLED")

    # --- logging ------------------------------------------------------------------------------------------

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            _retry(self.client.log_batch, self.run_id, params=items[i : i + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        self._tags_set.update({k: str(v) for k, v in tags.items()})
        _retry(self.client.log_batch, self.run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, step or 0) for k, v in metrics.items()
                 if np.isfinite(v) and (k, step or 0) not in self._logged]  # a continued run holds those already
        for i in range(0, len(items), 200):
            _retry(self.client.log_batch, self.run_id, metrics=items[i : i + 200])

    def log_dict(self, data: Any, artifact_file: str) -> None:
        self._files_logged[artifact_file] = ("dict", data)
        _retry(self.client.log_dict, self.run_id, data, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._files_logged[artifact_file] = ("text", text)
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
        for report in history:  # a new run gets the epochs already done; a continued one, those it lacks
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
        for report in history:  # a new run gets the figures already due (a continued one: same files again)
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
