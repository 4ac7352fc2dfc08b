"""MLflow tracking for the pipeline's stages: the only module of the library that knows MLflow and DVC (but for
DVC_ROOT, read in repo.py).

- Tracking URI: MLFLOW_TRACKING_URI when set (a team server), else SQLite `mlflow.db` at the repository root
  as an absolute path. The root is DVC_ROOT when DVC runs the stage (also for `dvc exp run --temp/--queue`,
  whose working copy is under .dvc/tmp), so every experiment lands in the one database `mlflow ui` opens.
- One experiment per task (`ednas-<task>`), artifacts under <root>/mlruns; one run per stage execution, tagged
  with the stage, the DVC experiment name, the git revision and a pipeline id shared by one pipeline's stages.
- One parent run per pipeline (one `dvc repro` / `dvc exp run`: the stages sharing a pipeline id), named after the
  DVC experiment (`workspace @ <rev>` outside one), tagged `ednas.stage: pipeline`, with every stage run nested
  under it (`mlflow.parentRunId`): `mlflow ui` shows one row per experiment. The parent holds all the run's params,
  the keys that differ from the baseline commit's params.yaml (tag `ednas.changed_params` and the description),
  and the headline metrics each stage hands it (log_pipeline_metrics: search_child_acc, test_error, ...). Its
  status follows its stages: RUNNING while one runs, then the status of the last one (FAILED with the stage's
  error as tag `error`).
- A team server (MLFLOW_TRACKING_URI=http://...) is checked once per stage (`/health`, a few seconds): one that
  does not answer stops the stage with one line (TrackingUnavailable) instead of MLflow's minutes of retries.
- The experiments are tagged as model training (`mlflow.experimentKind: custom_model_development`, set on
  creation and on an existing experiment without it). MLflow 3.17's UI does not read that tag: it shows the view
  of its sidebar switch "GenAI | Model training" (GenAI by default, kept in the browser) or of the URL's
  `?workflowType=machine_learning`, which ui_url() adds.
- MLflow keeps artifact locations absolute (a relative one is resolved against the cwd when the experiment is
  created, and each run stores its own copy), so a moved or copied workspace's mlflow.db points into the old
  place: a stage that finds its experiment's artifacts outside <root>/mlruns rewrites the database's locations
  to <root>/mlruns first (relocate_artifacts; `python -m tools.relocate_mlruns` does it without a stage, e.g.
  before `mlflow ui`).
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
import re
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence, TypeVar

import numpy as np

from .checkpoint import atomic_write_text
from .repo import repo_root
from .search import EpochReport, SearchCallback
from .spaces import SPACES, CellSpace, SearchSpace

T = TypeVar("T")
RETRY_SECONDS = 120.0
RUN_FILE = "mlflow_run.json"  # beside a stage's checkpoint: the run that checkpoint's epochs were logged to
# The experiment tag MLflow's UI reads for an experiment's kind (its JS bundle: "mlflow.experimentKind", values
# genai_development / custom_model_development / ...): these are model-training experiments, not GenAI apps.
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# MLflow 3.17's UI picks the view from its workflow switch, not from the tag: this query selects model training.
UI_QUERY = "workflowType=machine_learning"
PIPELINE_STAGE = "pipeline"  # ednas.stage of a pipeline's parent run
HEALTH_TIMEOUT_S = 5.0
POLICY_DECIMALS = 6  # policy JSON: probabilities rounded (the float32 softmax otherwise prints 0.3499999940395355)


def tracking_uri(root: Path | None = None) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(root or repo_root()) / 'mlflow.db'}"


class TrackingUnavailable(ConnectionError):
    """The tracking server of MLFLOW_TRACKING_URI does not answer; the message says what to do."""


def server_unreachable(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> str:
    """Why the http(s) tracking server `uri` does not answer its /health page within `timeout` seconds
    ('connection refused', 'HTTP 502 from /health', ...); '' when it answers or `uri` is not a server (sqlite:,
    file:, databricks are not checked)."""
    if not uri.startswith(("http://", "https://")):
        return ""
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout) as response:
            return "" if response.status == 200 else f"HTTP {response.status} from /health"
    except urllib.error.HTTPError as err:
        return f"HTTP {err.code} from /health"
    except (urllib.error.URLError, OSError) as err:
        return str(getattr(err, "reason", err)) or type(err).__name__


def check_server(uri: str, timeout: float = HEALTH_TIMEOUT_S) -> None:
    """Raises TrackingUnavailable when `uri` is an http(s) tracking server that does not answer (server_unreachable)."""
    reason = server_unreachable(uri, timeout)
    if reason:
        raise TrackingUnavailable(f"MLFLOW_TRACKING_URI={uri}: no MLflow server answers ({reason}); start it "
                                  "(mlflow server --host ... --port ...) or fix the URL, or unset "
                                  "MLFLOW_TRACKING_URI to log to mlflow.db here")


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


def changed_params(params_text: str, rev: str, cwd: Path | None = None) -> dict[str, Any] | None:
    """The flat params.yaml keys whose values differ from those of commit `rev` (a key the commit lacks
    counts as changed; a key removed is given as None); None when that file cannot be read (no git, no such
    commit or file)."""
    from ruamel.yaml import YAML, YAMLError

    from .config import changed_keys, flatten

    try:
        out = subprocess.run(["git", "show", f"{rev}:params.yaml"], cwd=cwd, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    try:
        now, before = (flatten(YAML(typ="safe").load(text) or {}) for text in (params_text, out.stdout))
    except (YAMLError, AttributeError):
        return None
    return {k: now.get(k) for k in sorted(changed_keys(now, before))}


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


# <root>/mlruns (this module's experiments), or MLflow's own <cwd>/mlruns/0 (the Default experiment)
_MLRUNS = re.compile(r"^(?P<prefix>.*/mlruns)(?:/\d+)?/?$")
# Every column of MLflow 3.17's SQL schema that holds an artifact location: (table, column, which rows)
_LOCATION_COLUMNS = (("experiments", "artifact_location", ""), ("runs", "artifact_uri", ""),
                     ("logged_models", "artifact_location", ""),
                     ("trace_tags", "value", " AND key = 'mlflow.artifactLocation'"),
                     ("model_versions", "storage_location", ""), ("model_versions", "source", ""))


def _local_path(location: str) -> str | None:
    """The file-system path of a local artifact location (file: URI or absolute path); None for any other."""
    if location.startswith("file:"):
        return urllib.parse.unquote(urllib.parse.urlparse(location).path)
    return location if location.startswith("/") else None


def relocate_artifacts(root: Path, dry_run: bool = False) -> dict[str, dict[str, int]]:
    """Points the artifact locations of <root>/mlflow.db that lie in the mlruns folder of another directory (the
    workspace was moved or copied from there) to <root>/mlruns, in every table that holds one; locations
    elsewhere (another scheme, a folder not named mlruns) are left alone. Returns {old mlruns path: {table:
    rows rewritten}}, empty when nothing pointed elsewhere; dry_run: counts without writing. Takes no lock
    (the caller holds _db_lock)."""
    root = Path(root).resolve()
    db = root / "mlflow.db"
    if not db.is_file():
        raise FileNotFoundError(f"{db}: no MLflow database here; give the workspace that holds mlflow.db")
    new_path, new_uri = str(root / "mlruns"), (root / "mlruns").as_uri()
    conn = sqlite3.connect(db, timeout=RETRY_SECONDS)
    try:
        tables = {name: {row[1] for row in conn.execute(f"PRAGMA table_info('{name}')")}
                  for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "artifact_location" not in tables.get("experiments", ()):
            raise ValueError(f"{db} is not an MLflow tracking database (no experiments table)")
        prefixes: dict[str, tuple[str, str]] = {}  # old prefix as stored -> (new prefix, old mlruns path)
        for (location,) in conn.execute("SELECT artifact_location FROM experiments"):
            match = _MLRUNS.match(location or "")
            path = _local_path(match["prefix"]) if match else None
            if path is None or path == new_path:
                continue
            # in the experiment's spelling (file: URI, or a plain path for MLflow's Default), which its runs copy
            prefixes[match["prefix"]] = (new_uri if location.startswith("file:") else new_path, path)
        moved: dict[str, dict[str, int]] = {}
        for old, (new, path) in prefixes.items():
            for table, column, rows in _LOCATION_COLUMNS:
                if column not in tables.get(table, ()):
                    continue
                n = len(old)  # the prefix, then the end or a "/": /old/mlruns2 is another folder
                done = conn.execute(f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                                    f"WHERE substr({column}, 1, ?) = ? "
                                    f"AND (length({column}) = ? OR substr({column}, ?, 1) = '/'){rows}",
                                    (new, n + 1, n, old, n, n + 1))
                if done.rowcount > 0:
                    counts = moved.setdefault(path, {})
                    counts[table] = counts.get(table, 0) + done.rowcount
        if dry_run:
            conn.rollback()
        else:
            conn.commit()
        return moved
    finally:
        conn.close()


def ui_url(experiment_id: str, base: str = "http://127.0.0.1:5000") -> str:
    """The MLflow UI page of an experiment in its model-training view (MLflow 3.17 opens in the GenAI view)."""
    return f"{base.rstrip('/')}/#/experiments/{experiment_id}?{UI_QUERY}"


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
        check_server(tracking_uri(self.root))
        with _db_lock(self.root):
            self.client = MlflowClient(tracking_uri=tracking_uri(self.root))
            self.experiment_id = self._open_experiment(f"ednas-{task}")
        self.params = {k: str(v) for k, v in params.items()}
        self.params_text = params_text
        self.extra_tags = dict(extra_tags or {})
        self.run_id = ""
        self.parent_id = ""                      # the pipeline's parent run (open_parent)
        self._parent_error = False               # the parent holds an `error` tag of an earlier failed stage
        self.continued = False                   # True: this execution goes on with a killed execution's run
        self.resumed_from = ""                   # else: the run of the checkpoint found, if it could not go on
        self._logged: set[tuple[str, int]] = set()  # (metric, step) the continued run already holds
        self._tags_set: dict[str, str] = {}         # set_tags / log_dict / log_text so far: restart() replays them
        self._files_logged: dict[str, tuple[str, Any]] = {}

    def _open_experiment(self, name: str) -> str:
        """The experiment's id. A new one is tagged as model training, its artifacts in <root>/mlruns (a team
        server's own location with MLFLOW_TRACKING_URI); an existing one without the tag gets it, and one whose
        artifacts lie in another directory's mlruns (a moved or copied workspace) has the store relocated."""
        local = not os.environ.get("MLFLOW_TRACKING_URI")
        location = (self.root / "mlruns").as_uri() if local else None
        experiment = _retry(self.client.get_experiment_by_name, name)
        if experiment is None:
            try:
                return _retry(self.client.create_experiment, name, artifact_location=location,
                              tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
            except Exception as err:  # a server has no file lock: another process's stage created it first
                if "already exists" not in str(err):
                    raise
                experiment = _retry(self.client.get_experiment_by_name, name)
        if local and experiment.artifact_location != location:
            for old, rows in relocate_artifacts(self.root).items():
                print(f"mlflow: {self.root / 'mlflow.db'} pointed to the artifacts in {old} (the workspace was moved "
                      f"or copied); {sum(rows.values())} locations now point to {self.root / 'mlruns'}",
                      file=sys.stderr)
        if EXPERIMENT_KIND_TAG not in experiment.tags:
            _retry(self.client.set_experiment_tag, experiment.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return experiment.experiment_id

    def __enter__(self) -> "StageRun":
        self.parent_id = self._open_parent()
        self.tags["mlflow.parentRunId"] = self.parent_id
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
            self._close_parent("FINISHED", "")
            return
        status = "KILLED" if isinstance(exc, KeyboardInterrupt) else "FAILED"
        if self.run_file is not None and not self.checkpoint.exists():
            self.run_file.unlink(missing_ok=True)  # no checkpoint to resume: nothing will look for this run
        try:
            _retry(self.client.set_tag, self.run_id, "error", _one_line(exc))
            _retry(self.client.set_terminated, self.run_id, status)
            self._close_parent(status, f"{self.stage}: {_one_line(exc)}")
        except Exception:  # never hide the stage's own error behind a tracking one
            pass

    # --- the pipeline's parent run ----------------------------------------------------------------------------

    def _open_parent(self) -> str:
        """The id of this pipeline's parent run, set RUNNING; created (named, tagged, given the params and the
        changed keys) by the pipeline's first stage. Stages of one pipeline run one after the other, and the
        SQLite store's lock covers two pipelines starting at once."""
        pid = self.tags["ednas.pipeline_id"]
        with _db_lock(self.root):
            found = _retry(self.client.search_runs, [self.experiment_id],
                           filter_string=f"tags.`ednas.pipeline_id` = '{pid}' and "
                                         f"tags.`ednas.stage` = '{PIPELINE_STAGE}'",
                           max_results=1, order_by=["attributes.start_time ASC"])
            if found:
                parent = found[0]
                self._parent_error = "error" in parent.data.tags
                if parent.info.status != "RUNNING":
                    _retry(self.client.update_run, parent.info.run_id, status="RUNNING")
                return parent.info.run_id
            rev, exp = self.tags["git.rev"], os.environ.get("DVC_EXP_NAME", "")
            changed = changed_params(self.params_text, rev) if rev != "unknown" else None
            listed = ("unknown" if changed is None else
                      ", ".join(f"{k}={v}" for k, v in changed.items()) or "none")
            name = exp or f"workspace @ {rev[:8]}"
            per_stage = ("ednas.gpu",)  # a stage's own process; the parent spans several
            tags = {**{k: v for k, v in self.extra_tags.items() if k not in per_stage}, "ednas.pipeline_id": pid, "ednas.task": self.tags["ednas.task"],
                    "ednas.stage": PIPELINE_STAGE, "dvc.exp_name": exp, "git.rev": rev,
                    "mlflow.source.git.commit": rev, "mlflow.runName": name, "ednas.changed_params": listed,
                    "mlflow.note.content": f"Pipeline {name} (id {pid}), from commit {rev[:8]}; params changed from "
                                           f"that commit's params.yaml: {listed}. Its stages are the nested runs."}
            run = _retry(self.client.create_run, self.experiment_id, tags=tags)
            self._log_params(run.info.run_id, self.params)
            return run.info.run_id

    def _close_parent(self, status: str, error: str) -> None:
        """The parent takes the status of the stage that ends; a failed stage's error, or none once one succeeds."""
        if error:
            _retry(self.client.set_tag, self.parent_id, "error", error)
        elif self._parent_error:
            _retry(self.client.delete_tag, self.parent_id, "error")
            self._parent_error = False
        _retry(self.client.set_terminated, self.parent_id, status)

    def log_pipeline_metrics(self, metrics: dict[str, float]) -> None:
        """Headline numbers of the stage (search_child_acc, test_error, params_m, ...) on the pipeline's parent
        run, where `mlflow ui` compares experiments; non-finite values are left out."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, 0) for k, v in metrics.items() if np.isfinite(v)]
        if items:
            _retry(self.client.log_batch, self.parent_id, metrics=items)

    def set_pipeline_tags(self, tags: dict[str, Any]) -> None:
        """Tags on the pipeline's parent run (the report's `ednas.reused`: stages whose results came from an earlier
        pipeline)."""
        self._log_tags(self.parent_id, tags)

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
        """Closes as KILLED the RUNNING runs of this stage whose process has ended, of this working directory or
        of one that no longer exists (a `dvc exp run --temp/--queue` copy, deleted when its experiment was
        killed: nothing can resume there), and the parent run of each when it is another pipeline's (the rerun
        changed the params or the revision, so nothing will go on with it) and none of its stages still runs."""
        runs = _retry(self.client.search_runs, [self.experiment_id],
                      filter_string=f"attributes.status = 'RUNNING' and tags.`ednas.stage` = '{self.stage}'")
        parents: dict[str, str] = {}  # parent run id -> the deleted working copy of its killed stage ('' if none)
        for run in runs:
            workdir = run.data.tags.get("ednas.workdir", "")
            gone = workdir if workdir and workdir != self.workdir and not Path(workdir).exists() else ""
            if run.info.run_id != self.run_id and (workdir == self.workdir or gone) and _ended(run, self.host):
                copy = f"; its working copy {gone} is gone" if gone else ""
                _retry(self.client.set_tag, run.info.run_id, "error",
                       f"its process ended without closing the run (killed){copy}; closed by run {self.run_id}")
                _retry(self.client.set_terminated, run.info.run_id, "KILLED")
                parents.setdefault(run.data.tags.get("mlflow.parentRunId", ""), gone)
        for parent, gone in parents.items():
            if parent and parent != self.parent_id:
                self._close_abandoned_parent(parent, gone)

    def _close_abandoned_parent(self, parent_id: str, gone: str = "") -> None:
        """A pipeline whose killed stage was just closed: KILLED, with the reason, unless a stage still runs."""
        try:
            parent = _retry(self.client.get_run, parent_id)
        except Exception:  # MlflowException: deleted meanwhile
            return
        live = _retry(self.client.search_runs, [self.experiment_id], max_results=1,
                      filter_string=f"attributes.status = 'RUNNING' and tags.`mlflow.parentRunId` = '{parent_id}'")
        if parent.info.status == "RUNNING" and not live:
            why = (f"its working copy {gone} is gone (a killed `dvc exp run --temp/--queue`)" if gone else
                   "the stage was rerun as another pipeline (other params or revision)")
            _retry(self.client.set_tag, parent_id, "error",
                   f"{self.stage}: its process was killed; {why}; closed by run {self.run_id}")
            _retry(self.client.set_terminated, parent_id, "KILLED")

    # --- logging ------------------------------------------------------------------------------------------

    def log_params(self, params: dict[str, Any]) -> None:
        self._log_params(self.run_id, params)

    def _log_params(self, run_id: str, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, str(v)) for k, v in params.items()]
        for i in range(0, len(items), 100):
            _retry(self.client.log_batch, run_id, params=items[i : i + 100])

    def set_tags(self, tags: dict[str, Any]) -> None:
        self._tags_set.update({k: str(v) for k, v in tags.items()})
        self._log_tags(self.run_id, tags)

    def _log_tags(self, run_id: str, tags: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        _retry(self.client.log_batch, run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])

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


def metric_histories(run_ids: Iterable[str], keys: Sequence[str], uri: str | None = None
                     ) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """run id -> key -> [(step, value)], steps ascending, of each of `keys` the run logged (a key it never logged
    is absent; a step logged twice, as by a resumed run, keeps its latest value). One query a run and key."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri or tracking_uri())
    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for run_id in dict.fromkeys(r for r in run_ids if r):
        out[run_id] = {}
        for key in keys:
            by_step: dict[int, float] = {}
            for m in sorted(_retry(client.get_metric_history, run_id, key), key=lambda m: (m.step, m.timestamp)):
                by_step[int(m.step)] = float(m.value)
            if by_step:
                out[run_id][key] = sorted(by_step.items())
    return out


def metric_histories_or_warning(run_ids: Iterable[str], keys: Sequence[str], uri: str | None = None
                                ) -> tuple[dict[str, dict[str, list[tuple[int, float]]]], str]:
    """metric_histories, or ({}, a one-line warning) when the store cannot give them: what only draws a figure
    (the study's curves) does not fail what else a command writes."""
    try:
        return metric_histories(run_ids, keys, uri), ""
    except Exception as err:  # MLflow's and its database's errors share no narrower base
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        return {}, f"cannot read the search runs' metric histories ({first}); study_curves.png is not drawn"


def _policy_space(arrays: dict[str, np.ndarray]) -> SearchSpace | None:
    """The search space whose cells the arrays describe ('<cell>_node' [n_nodes, max_combos] and '<cell>_edge'
    [n_edges, n_ops] for each of its cell types), else None."""
    for space in SPACES.values():
        cell = space.cell
        shapes = {**{f"{t}_node": (cell.n_nodes, cell.max_combos) for t in space.cell_types},
                  **{f"{t}_edge": (cell.n_edges, len(cell.ops)) for t in space.cell_types}}
        if all(key in arrays and np.shape(arrays[key]) == shape for key, shape in shapes.items()):
            return space
    return None


def _rounded(value: Any) -> float:
    return round(float(value), POLICY_DECIMALS)  # via float64: a float32 0.35 is written 0.35


def _combo_label(combo: tuple[int, ...]) -> str:
    return "(" + ",".join(map(str, combo)) + ")" if len(combo) != 1 else str(combo[0])  # as ednas_core.viz


def _edge_table(values: np.ndarray, cell: CellSpace, cast: Callable[[Any], Any]) -> dict[str, dict[str, Any]]:
    """Per edge of the full DAG ('0->2', as the heatmaps label it): operation name -> value."""
    return {f"{pred}->{node}": {op: cast(v) for op, v in zip(cell.ops, row)}
            for (pred, node), row in zip(cell.edges, np.asarray(values))}


def _node_table(values: np.ndarray, cell: CellSpace) -> dict[str, dict[str, float]]:
    """Per searched node ('node 3'): its own input combinations ('(0,1)'; one input: '0'; an any-subset cell's
    empty one, every incoming edge `none`: '()') -> probability; the padding of a node with fewer combinations
    than the last one is left out."""
    return {f"node {node}": {_combo_label(c): _rounded(v) for c, v in zip(combos, row)}
            for node, combos, row in zip(cell.node_ids, cell.combos, np.asarray(values))}


def policy_json(probabilities: dict[str, np.ndarray], space: SearchSpace | None = None) -> dict[str, Any]:
    """The policy (Strategy.probabilities) as labelled JSON, rounded to POLICY_DECIMALS:
    '<cell>_node': {'node 3': {'(0,1)': p, '(0,2)': p, '(1,2)': p}, ...} and '<cell>_edge': {'0->2': {'max_pool_3x3':
    p, ...}, ...}. `space` defaults to the one the keys and shapes name; arrays of no known space are written as
    rounded nested lists."""
    space = space or _policy_space(probabilities)
    out: dict[str, Any] = {}
    for key, values in probabilities.items():
        cell_type, _, kind = key.rpartition("_")
        if space is not None and cell_type in space.cell_types and kind == "node":
            out[key] = _node_table(values, space.cell)
        elif space is not None and cell_type in space.cell_types and kind == "edge":
            out[key] = _edge_table(values, space.cell, _rounded)
        else:
            out[key] = np.round(np.asarray(values, dtype=np.float64), POLICY_DECIMALS).tolist()
    return out


def counts_json(counts: dict[str, np.ndarray], space: SearchSpace | None) -> dict[str, Any]:
    """EpochReport.counts as '<cell>_counts': {'0->2': {'max_pool_3x3': n, ...}, ...} (how often each operation
    of each edge was used in the epoch); nested lists for arrays of no known space."""
    out: dict[str, Any] = {}
    for cell_type, values in counts.items():
        labelled = space is not None and cell_type in space.cell_types \
            and np.shape(values) == (space.cell.n_edges, len(space.cell.ops))
        out[f"{cell_type}_counts"] = _edge_table(values, space.cell, int) if labelled else np.asarray(values).tolist()
    return out


class MLflowSearchLogger(SearchCallback):
    """Per-epoch search metrics and, every `policy_every` epochs and at the last, the policy vectors (softmax)
    and the epoch's sampling counts as labelled JSON 'policy/epoch_NNNN.json' (policy_json, counts_json)."""

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
            space = _policy_space(report.probabilities)
            self.run.log_dict({"epoch": step, **policy_json(report.probabilities, space),
                               **counts_json(report.counts, space)}, f"policy/epoch_{step:04d}.json")


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
