"""Sweeps: a grid of DVC experiments, one submitit job each, on a SLURM cluster or on this machine
(`python -m tools.sweep` is the command line).

- The grid is written as `dvc exp run -S` takes it (Hydra's override grammar, which DVC parses): `key=v1,v2`,
  `key=range(start,stop[,step])`, `key=choice(a,b)`; the experiments are the cartesian product of all -S options,
  the first varying slowest (as `dvc exp run --queue -S ... -S ...` orders them). Each point's params.yaml (the
  repository's with the point's overrides, as DVC writes it) is validated with the project's schema, and checked as
  the check-params stage checks it, before anything is submitted.
- One job per experiment (SweepJob, picklable): it clones the submitting repository at the submitting commit into
  <workdir>/<name> (DVC's lock runs one pipeline per workspace), runs `dvc exp run --name <name> -S ...` there with
  MLFLOW_TRACKING_URI passed on (every stage logs to that server), then pushes the experiment with
  `dvc exp push <git remote> <name>` (`--no-cache` without a DVC remote, `-r <remote>` with one). It returns a small
  result dict; a failed pipeline or a refused push is its status and one error line, and the other jobs go on.
- On preemption or timeout submitit requeues the job (checkpoint()); the requeued job reuses its clone, where the
  stages resume from their checkpoints, and skips the run when the clone already holds the experiment.
- Everything a job reads must be on a file system every node sees: the submitting repository (cloned by path), the
  work folder, the Python environment, and the raw data (params.yaml's data.root, absolute; the embedded demo
  tasks digits and markov need none).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

PARAMS_FILE = "params.yaml"
SYNTAX = "key=value, key=v1,v2 or key=range(start,stop[,step])"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 80
SOURCE_REMOTE = "sweep-source"   # the clone's name for the submitting repository
MARKER = "ednas-sweep.json"      # in a clone's .git: the experiment the clone was made for
CLUSTERS = ("slurm", "local")
# what DVC hands a stage; a sweep started from inside a stage must not pass them on to its own `dvc` runs
DVC_STAGE_VARS = ("DVC_ROOT", "DVC_STAGE", "DVC_EXP_NAME", "DVC_EXP_BASELINE_REV")

SUCCEEDED, PIPELINE_FAILED, PUSH_FAILED, FAILED = "succeeded", "pipeline failed", "push failed", "failed"


class SweepError(RuntimeError):
    """The sweep (or one job of it) cannot go on; the message is one line saying what is wrong and how to fix it."""


# --- the grid ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """One experiment of the grid: its name, its overrides as `dvc exp run -S` takes them (key=value), and the
    values as DVC writes them into params.yaml (typed: 1 is an int, ednas a string)."""
    name: str
    overrides: tuple[str, ...]
    values: dict[str, Any] = field(hash=False)


def _parse_option(spec: str, parser: Any) -> tuple[str, list[tuple[str, Any]]]:
    """One -S option -> (key, [(value as -S writes it, typed value), ...])."""
    from hydra.core.override_parser.types import ValueType
    from hydra.errors import HydraException

    body = spec
    head = spec.partition("=")[0]
    if ":" in head:  # DVC's `file:key=value`
        path, _, body = spec.partition(":")
        if Path(path).as_posix().lstrip("./") != PARAMS_FILE:
            raise SweepError(f"-S {spec}: only {PARAMS_FILE}'s keys can be swept; drop '{path}:'")
    try:
        override = parser.parse_override(body)
    except HydraException as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise SweepError(f"-S {spec}: not DVC's -S syntax ({reason}); write {SYNTAX}") from None
    key = override.key_or_group
    if override.is_add() or override.is_force_add() or override.is_delete() or override.package is not None:
        raise SweepError(f"-S {spec}: only plain key=value overrides; params.yaml holds every key, so drop the "
                         "'+', '++', '~' or '@package'")
    if override.is_sweep_override():
        if not override.is_discrete_sweep() or override.value_type is ValueType.GLOB_CHOICE_SWEEP:
            kind = override.value_type.name.lower().replace("_", " ") if override.value_type else "this"
            raise SweepError(f"-S {spec}: {kind}s cannot be expanded into a grid; write {SYNTAX}")
        texts = list(override.sweep_string_iterator())
    else:
        texts = [override.get_value_element_as_str()]
    if not texts:
        raise SweepError(f"-S {spec}: the sweep has no values; write {SYNTAX}")
    repeated = sorted({t for t in texts if texts.count(t) > 1})
    if repeated:
        raise SweepError(f"-S {spec}: {key}={repeated[0]} is given twice; list each value once")
    return key, [(text, parser.parse_override(f"{key}={text}").value()) for text in texts]


def expand_grid(specs: Sequence[str], prefix: str) -> list[Point]:
    """The experiments of the -S options `specs`, in DVC's order (the cartesian product, the first option varying
    slowest), named `<prefix>-<swept values>`. Raises SweepError on bad syntax."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    check_name(prefix, "--name-prefix")
    parser = OverridesParser.create()
    options = [_parse_option(spec, parser) for spec in specs]
    keys = [key for key, _ in options]
    twice = sorted({k for k in keys if keys.count(k) > 1})
    if twice:
        raise SweepError(f"{twice[0]} is given by two -S options; give its values in one: -S {twice[0]}=v1,v2")
    grid = [dict(zip(keys, combo)) for combo in itertools.product(*(values for _, values in options))]
    names = point_names(grid, prefix)
    return [Point(name, tuple(f"{k}={text}" for k, (text, _) in point.items()),
                  {k: value for k, (_, value) in point.items()}) for name, point in zip(names, grid)]


def check_name(name: str, what: str) -> None:
    if not NAME_RE.match(name) or name.endswith(".lock") or ".." in name or len(name) > MAX_NAME // 2:
        raise SweepError(f"{what} {name!r}: use up to {MAX_NAME // 2} letters, digits, '_', '.' and '-', starting "
                         "with a letter or digit (it begins every experiment's name)")


def _token(key: str, text: str, value: Any) -> str:
    """A point's value in its name: seed1, lr0.05, ednas (strings as they are), augment / no-augment."""
    leaf = key.rsplit(".", 1)[-1]
    if isinstance(value, bool):
        token = leaf if value else f"no-{leaf}"
    elif isinstance(value, str) and value:
        token = value
    else:
        token = f"{leaf}{text}"
    token = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9_.-]+", "-", token)).strip("-.")
    return token or leaf


def _digest(point: dict[str, tuple[str, Any]]) -> str:
    return hashlib.sha256("\n".join(f"{k}={t}" for k, (t, _) in point.items()).encode()).hexdigest()[:8]


def point_names(grid: list[dict[str, tuple[str, Any]]], prefix: str) -> list[str]:
    """Deterministic, readable experiment names: the prefix and the values of the keys that vary over the grid
    (all keys when none varies); with a short hash of the point when two names would be equal or too long."""
    keys = list(grid[0]) if grid else []
    swept = [k for k in keys if len({point[k][0] for point in grid}) > 1] or keys
    names = ["-".join([prefix, *(_token(k, *point[k]) for k in swept)]) for point in grid]
    if len(set(names)) < len(names) or any(len(n) > MAX_NAME for n in names):
        names = [f"{n[:MAX_NAME - 9].rstrip('-.')}-{_digest(point)}" for n, point in zip(names, grid)]
    return [re.sub(r"\.lock$", "-lock", n) for n in names]


# --- validation ---------------------------------------------------------------------------------------------------

def _set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Sets a dotted key as `dvc exp run -S` does; a missing section is created, for the schema to name it."""
    node: Any = data
    *parents, last = key.split(".")
    for depth, part in enumerate(parents):
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise SweepError(f"{'.'.join(parents[:depth + 1])} is a value, not a section: {key} cannot be set")
    node[last] = value


def validate_points(repo: Path, points: Sequence[Point]) -> tuple[list[str], list[str]]:
    """Checks every point's params.yaml (the repository's with its overrides) with the schema (load_params, as the
    stages read it) and as check-params would: a change of another task's keys only, or a task that the
    repository's dvc.yaml does not track. Raises SweepError with the first problem; returns the tasks the points
    run and warnings."""
    from ruamel.yaml import YAML

    from ednas_core.config import ConfigError, flatten, load_params
    from stages.check_params import check_dvc_yaml, flat_params_text, locked_params, other_task_warning
    from stages.common import StageError, read_params

    try:
        _, text = read_params(repo / PARAMS_FILE)
    except ConfigError as err:
        raise SweepError(f"{PARAMS_FILE} of {repo} is not valid ({err}); fix and commit it first") from None
    committed, locked = flat_params_text(text), locked_params(repo / "dvc.lock")
    tasks, warnings = set(), []
    for point in points:
        data = YAML(typ="safe").load(text)
        for key, value in point.values.items():
            _set_key(data, key, value)
        try:
            params = load_params(data)
            check_dvc_yaml(params.task, repo / "dvc.yaml")
        except (ConfigError, StageError) as err:
            raise SweepError(str(err)) from None
        tasks.add(params.task)
        try:
            warning = other_task_warning(flatten(data), committed, locked, params)
        except StageError as err:
            raise SweepError(f"{point.name}: {err}") from None
        if warning:
            warnings.append(f"{point.name}: {warning}")
    return sorted(tasks), warnings


# --- the repository, remotes and the tracking server ---------------------------------------------------------------

def _git(cwd: Path, *args: str, timeout: float | None = 120) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def repository(start: Path) -> Path:
    done = _git(start, "rev-parse", "--show-toplevel")
    if done.returncode:
        raise SweepError(f"{start} is not in a git repository; run the sweep in the project's clone")
    return Path(done.stdout.strip()).resolve()


def clean_commit(repo: Path) -> str:
    """The commit the jobs clone: HEAD, on a branch, with no uncommitted change to a tracked file."""
    dirty = [line[3:] for line in _git(repo, "status", "--porcelain", "--untracked-files=no").stdout.splitlines()]
    if dirty:
        more = f" and {len(dirty) - 3} more" if len(dirty) > 3 else ""
        raise SweepError(f"{repo} has uncommitted changes to tracked files ({', '.join(dirty[:3])}{more}); commit "
                         "them first: each job clones the last commit")
    head = _git(repo, "rev-parse", "--verify", "-q", "HEAD^{commit}").stdout.strip()
    if not head:
        raise SweepError(f"{repo} has no commit yet; commit the project first: each job clones the last commit")
    if not _git(repo, "branch", "--contains", head, "--format=%(refname:short)").stdout.strip():
        raise SweepError(f"HEAD ({head[:8]}) is on no branch; put it on one (git switch -c NAME) first: the jobs "
                         "clone the repository when they start, and a commit on no branch can be gone by then")
    return head


def _is_url(remote: str) -> bool:
    return "://" in remote or remote.startswith(("/", "./", "../", "~")) or bool(re.match(r"^[\w.-]+@[\w.-]+:", remote))


def _absolute(url: str, repo: Path) -> str:
    """A local path remote made absolute (the clones live elsewhere); other URLs as they are."""
    if "://" in url or re.match(r"^[\w.-]+@[\w.-]+:", url) or re.match(r"^[\w.-]+:", url):
        return url
    return str((repo / Path(url).expanduser()).resolve())


def git_remote_url(repo: Path, remote: str) -> str:
    """Where --git-remote points: a remote of the submitting repository by name, or a URL / path."""
    if _is_url(remote):
        return _absolute(remote, repo)
    done = _git(repo, "remote", "get-url", remote)
    if done.returncode:
        raise SweepError(f"--git-remote {remote}: no such git remote in {repo} (git remote -v lists them); add it "
                         f"(git remote add {remote} URL) or give a URL")
    return _absolute(done.stdout.strip(), repo)


def remote_warnings(repo: Path, remote: str, commit: str) -> list[str]:
    """A warning when no branch of the git remote (as last fetched) holds the commit: clones of the remote then
    lack the baseline that `dvc exp pull` and `dvc exp show` start from."""
    if _is_url(remote):
        return []
    held = _git(repo, "branch", "-r", "--contains", commit, "--format=%(refname:short)").stdout.split()
    if any(ref.startswith(f"{remote}/") for ref in held):
        return []
    return [f"commit {commit[:8]} is on no branch of {remote}; push it (git push {remote} HEAD) so that clones of "
            f"{remote} have the experiments' baseline for `dvc exp pull` and `dvc exp show`"]


def check_dvc_remote(repo: Path, name: str) -> None:
    """--dvc-remote must be a remote of the committed .dvc/config: the clones have only what git tracks."""
    done = subprocess.run([sys.executable, "-m", "dvc", "remote", "list", "--project"], cwd=repo,
                          capture_output=True, text=True, timeout=120)
    names = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    if name not in names:
        raise SweepError(f"--dvc-remote {name}: not a DVC remote of {repo}/.dvc/config (the clones have only what git "
                         f"tracks); add it (dvc remote add {name} URL), commit .dvc/config, or leave the option out "
                         "to push the experiments without their cached outputs")


def check_tracking(uri: str | None, cluster: str) -> list[str]:
    """Fails when MLFLOW_TRACKING_URI names a server that does not answer /health; returns warnings (unset, or a
    loopback address that jobs on other nodes cannot reach)."""
    from urllib.parse import urlparse

    from ednas_core.tracking import TrackingUnavailable, check_server

    if not uri:
        return ["MLFLOW_TRACKING_URI is not set: each job logs to an mlflow.db in its own clone, scattered over the "
                "work folder; set it to a tracking server every node reaches (mlflow server --host 0.0.0.0 ...)"]
    try:
        check_server(uri)
    except TrackingUnavailable as err:
        raise SweepError(str(err)) from None
    if cluster == "slurm" and urlparse(uri).hostname in ("127.0.0.1", "localhost", "::1"):
        return [f"MLFLOW_TRACKING_URI={uri} is a loopback address: jobs on other nodes cannot reach it; use the "
                "server's host name or address"]
    return []


def prepare_tracking(uri: str, tasks: Iterable[str]) -> None:
    """Creates the MLflow experiments (ednas-<task>, tagged as the stages tag them) before the jobs start, so that
    concurrent first stages do not race to create them (and a new SQLite store is set up once)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    from ednas_core.tracking import EXPERIMENT_KIND, EXPERIMENT_KIND_TAG

    client = MlflowClient(tracking_uri=uri)
    for task in tasks:
        name = f"ednas-{task}"
        try:
            if client.get_experiment_by_name(name) is None:
                client.create_experiment(name, tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND})
        except MlflowException as err:
            if client.get_experiment_by_name(name) is None:  # else another process created it first
                raise SweepError(f"MLFLOW_TRACKING_URI={uri}: creating MLflow experiment {name} failed "
                                 f"({str(err).strip().splitlines()[0]}); check the server's log") from None


# --- the job ------------------------------------------------------------------------------------------------------

def error_line(lines: Iterable[str]) -> str:
    """The line of a command's output that says what went wrong: a stage's `<stage>: error: ...`, else DVC's last
    `ERROR: ...`, else the last line."""
    lines = [line.split("\r")[-1].strip() for line in lines]
    lines = [line for line in lines if line]
    for pattern in (r"^[\w-]+: error: ", r"^ERROR: "):
        found = [line for line in lines if re.match(pattern, line)]
        if found:
            return found[-1][:500]
    return lines[-1][:500] if lines else ""


@dataclass(frozen=True)
class SweepJob:
    """One experiment of a sweep as a submitit job: clone, `dvc exp run`, `dvc exp push`; returns a result dict
    (name, params, status, commit, exp_ref, exp_rev, pushed, error, clone). Picklable; checkpoint() has submitit
    requeue it on preemption or timeout."""
    name: str
    overrides: tuple[str, ...]
    source: str               # the submitting repository, cloned by path
    commit: str
    clone: str                # <workdir>/<name>
    git_remote: str           # a remote name of the submitting repository, or a URL
    git_url: str              # where it points
    dvc_remote: str | None = None
    tracking_uri: str | None = None
    threads: int | None = None

    @property
    def exp_ref(self) -> str:
        """Where DVC keeps the experiment: refs/exps/<baseline[:2]>/<baseline[2:]>/<name>."""
        return f"refs/exps/{self.commit[:2]}/{self.commit[2:]}/{self.name}"

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "commit": self.commit, "overrides": list(self.overrides)}

    def command(self) -> list[str]:
        return ["dvc", "exp", "run", "--name", self.name, *(arg for o in self.overrides for arg in ("-S", o))]

    def __call__(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "name": self.name, "params": dict(o.split("=", 1) for o in self.overrides), "status": FAILED,
            "commit": self.commit, "exp_ref": None, "exp_rev": None, "pushed": False, "error": None,
            "clone": self.clone}
        try:
            clone = self.prepare_clone()
            rev = self._experiment_rev(clone)
            if rev is None:
                code, output = self._dvc(clone, *self.command()[1:])
                if code:
                    result.update(status=PIPELINE_FAILED, error=error_line(output) or f"dvc exp run exited with {code}")
                    return result
                rev = self._experiment_rev(clone)
                if rev is None:
                    raise SweepError(f"dvc exp run ended well but {clone} holds no {self.exp_ref}")
            result.update(exp_ref=self.exp_ref, exp_rev=rev)
            problem = self.push(clone, rev)
            if problem:
                result.update(status=PUSH_FAILED, error=problem)
            else:
                result.update(status=SUCCEEDED, pushed=True)
        except SweepError as err:
            result["error"] = str(err)
        return result

    def push(self, clone: Path, rev: str) -> str:
        """Pushes the experiment to the git remote (its cached outputs to the DVC remote, if any); checks that the
        remote then holds it (`dvc exp push` exits 0 when the remote holds another experiment of that name); the
        error line, or "" when pushed."""
        target = self.git_url if _is_url(self.git_remote) else self.git_remote
        where = self.git_remote if target == self.git_url else f"{self.git_remote} ({self.git_url})"
        cache = ["-r", self.dvc_remote] if self.dvc_remote else ["--no-cache"]
        code, output = self._dvc(clone, "exp", "push", *cache, target, self.name)
        if code:
            return f"dvc exp push to {where} failed: {error_line(output) or f'exit {code}'}"
        held = _git(clone, "ls-remote", target, self.exp_ref, timeout=600)
        if held.stdout.split()[:1] == [rev]:
            return ""
        diverged = [line.strip() for line in output if "diverged" in line]
        why = (f"{diverged[0]} (another run pushed an experiment of that name: use another --name-prefix)"
               if diverged else f"the remote does not hold {self.exp_ref} afterwards")
        return f"dvc exp push to {where} did not push {self.name}: {why}"

    def checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        """submitit calls this on preemption or timeout: requeue the same job (it resumes in its clone)."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, *args, **kwargs)

    def check_clone(self) -> bool:
        """Whether the clone exists already (made for this very experiment); SweepError if it was made for another."""
        clone = Path(self.clone)
        if not clone.exists():
            return False
        marker = clone / ".git" / MARKER
        if not marker.is_file():
            raise SweepError(f"{clone} exists and is not a sweep's clone; move it away or use another --workdir")
        if json.loads(marker.read_text()) != self.identity():
            raise SweepError(f"{clone} is the clone of another experiment named {self.name} (other commit or "
                             "params); use another --name-prefix or --workdir")
        return True

    def prepare_clone(self) -> Path:
        """The job's clone at the commit, with the git remote; reused when it exists (a requeued job)."""
        clone = Path(self.clone)
        if not self.check_clone():
            staging = clone.with_name(f".{clone.name}.cloning")  # renamed when whole: no half clone under the name
            shutil.rmtree(staging, ignore_errors=True)
            clone.parent.mkdir(parents=True, exist_ok=True)
            for step in (["clone", "-q", "--no-checkout", "-o", SOURCE_REMOTE, self.source, str(staging)],
                         ["-C", str(staging), "checkout", "-q", "--detach", self.commit]):
                done = _git(clone.parent, *step, timeout=None)  # a large repository takes its time
                if done.returncode:
                    shutil.rmtree(staging, ignore_errors=True)
                    raise SweepError(f"git {step[0] if step[0] != '-C' else step[2]} for {clone} failed: "
                                     f"{error_line(done.stderr.splitlines())}")
            (staging / ".git" / MARKER).write_text(json.dumps(self.identity()) + "\n")
            os.replace(staging, clone)
        else:
            # a requeued job: DVC's read/write lock left in the clone is its killed run's, whose pid a process of
            # this node may have now (DVC would wait on it); DVC's repository lock still keeps two runs apart
            (clone / ".dvc" / "tmp" / "rwlock").unlink(missing_ok=True)
        if not _is_url(self.git_remote):  # the remote by the name the user gave, pointing where it points
            _git(clone, "remote", "remove", self.git_remote)
            _git(clone, "remote", "add", self.git_remote, self.git_url)
        return clone

    def _experiment_rev(self, clone: Path) -> str | None:
        rev = _git(clone, "rev-parse", "-q", "--verify", f"{self.exp_ref}^{{commit}}").stdout.strip()
        return rev or None

    def environment(self) -> dict[str, str]:
        """`dvc` and the stages: this interpreter's bin folder first on PATH, the sweep's tracking server, the
        job's CPU count as thread count."""
        env = {k: v for k, v in os.environ.items() if k not in DVC_STAGE_VARS}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env.pop("MLFLOW_TRACKING_URI", None)
        if self.tracking_uri:
            env["MLFLOW_TRACKING_URI"] = self.tracking_uri
        if self.threads:
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        return env

    def _dvc(self, clone: Path, *args: str) -> tuple[int, list[str]]:
        """Runs `dvc <args>` in the clone, its output going on to the job's log; (exit code, last output lines)."""
        print(f"sweep: {self.name}: dvc {' '.join(args)}", flush=True)
        tail: deque[str] = deque(maxlen=200)
        with subprocess.Popen([sys.executable, "-m", "dvc", *args], cwd=clone, env=self.environment(), text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              errors="replace") as process:
            assert process.stdout is not None
            for line in process.stdout:
                sys.stdout.write(line)
                tail.append(line.rstrip("\n"))
            code = process.wait()
        sys.stdout.flush()
        return code, list(tail)


# --- planning, submitting, waiting --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Resources:
    """What each job asks the cluster for (SLURM options; the local executor uses timeout and GPUs)."""
    time_min: int = 720
    gpus: int = 1
    cpus: int | None = None
    mem_gb: float | None = None
    partition: str | None = None
    account: str | None = None
    max_requeue: int = 3
    max_parallel: int | None = None


@dataclass(frozen=True)
class Plan:
    """A validated sweep: what would be submitted."""
    repo: Path
    commit: str
    workdir: Path
    git_remote: str
    jobs: tuple[SweepJob, ...]
    tasks: tuple[str, ...]
    tracking_uri: str | None
    warnings: tuple[str, ...]


def default_workdir(repo: Path) -> Path:
    return repo.parent / f"{repo.name}-sweeps"


def plan_sweep(start: Path, specs: Sequence[str], *, prefix: str = "sweep", cluster: str = "slurm",
               workdir: Path | None = None, git_remote: str = "origin", dvc_remote: str | None = None,
               tracking_uri: str | None = None, threads: int | None = None) -> Plan:
    """Everything checked before a job is submitted: the grid's syntax and every point's params, a clean
    repository on a branch, the remotes, the tracking server, and clones left by an earlier sweep."""
    if cluster not in CLUSTERS:
        raise SweepError(f"--executor {cluster}: choose one of {', '.join(CLUSTERS)}")
    points = expand_grid(specs, prefix)
    repo = repository(start)
    commit = clean_commit(repo)
    tasks, warnings = validate_points(repo, points)
    url = git_remote_url(repo, git_remote)
    warnings += remote_warnings(repo, git_remote, commit)
    if dvc_remote:
        check_dvc_remote(repo, dvc_remote)
    warnings += check_tracking(tracking_uri, cluster)
    workdir = (workdir or default_workdir(repo)).expanduser().resolve()
    if workdir == repo or repo in workdir.parents:
        raise SweepError(f"--workdir {workdir} is inside the repository; give a folder outside it (the clones are "
                         "repositories of their own)")
    jobs = tuple(SweepJob(p.name, p.overrides, str(repo), commit, str(workdir / p.name), git_remote, url, dvc_remote,
                          tracking_uri, threads) for p in points)
    for job in jobs:
        job.check_clone()
    return Plan(repo, commit, workdir, git_remote, jobs, tuple(tasks), tracking_uri, tuple(warnings))


def import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise SweepError("submitit is not installed; pip install -e '.[cluster]'") from None
    return submitit


def make_executor(cluster: str, folder: Path, resources: Resources, name: str) -> Any:
    """submitit's AutoExecutor for the cluster, with the resources as its parameters."""
    submitit = import_submitit()
    executor = submitit.AutoExecutor(folder=folder, cluster=cluster, slurm_max_num_timeout=resources.max_requeue,
                                     local_max_num_timeout=resources.max_requeue)
    params: dict[str, Any] = {"name": name, "timeout_min": resources.time_min, "gpus_per_node": resources.gpus,
                              "nodes": 1, "tasks_per_node": 1, "cpus_per_task": resources.cpus,
                              "mem_gb": resources.mem_gb, "slurm_partition": resources.partition,
                              "slurm_account": resources.account, "slurm_array_parallelism": resources.max_parallel}
    executor.update_parameters(**{k: v for k, v in params.items() if v is not None})
    return executor


def submit(plan: Plan, cluster: str, resources: Resources) -> list[Any]:
    """Submits one job per experiment (a SLURM job array); returns submitit's job handles, in the plan's order."""
    if plan.tracking_uri:
        prepare_tracking(plan.tracking_uri, plan.tasks)
    executor = make_executor(cluster, plan.workdir / "submitit", resources, f"sweep-{plan.commit[:8]}")
    try:
        with executor.batch():
            handles = [executor.submit(job) for job in plan.jobs]
    except (OSError, subprocess.SubprocessError) as err:
        hint = " (is sbatch on PATH? run on the cluster's login node)" if cluster == "slurm" else ""
        raise SweepError(f"submitting to {cluster} failed: {str(err).strip().splitlines()[-1]}{hint}") from None
    return handles


@dataclass(frozen=True)
class Outcome:
    """How one job ended: its state (succeeded, pipeline failed, push failed, failed, or the scheduler's state when
    the job itself died) and the error line."""
    name: str
    job_id: str
    state: str
    error: str = ""
    result: dict[str, Any] | None = field(default=None, hash=False)

    @property
    def ok(self) -> bool:
        return self.state == SUCCEEDED

    def line(self) -> str:
        return f"{self.name}  job {self.job_id}  {self.state}" + (f"  {self.error}" if self.error else "")


def _exception_line(text: str) -> str:
    """The `SomeError: message` line of a job's traceback (submitit's FailedJobError wraps it), else its first."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    found = [line for line in lines if re.match(r"^[\w.]*(Error|Exception|Interrupt|Exit)\b", line)]
    return (found[-1] if found else lines[0] if lines else "no result")[:500]


def outcome(job: SweepJob, handle: Any) -> Outcome:
    """The outcome of a finished job handle."""
    try:
        result = handle.result()
    except Exception as err:  # the job died: killed, out of time or memory, or a bug (its log has the traceback)
        state = str(getattr(handle, "state", "") or "")
        state = state if state not in ("", "FINISHED", "COMPLETED", "UNKNOWN") else FAILED
        return Outcome(job.name, str(handle.job_id), state, f"{_exception_line(str(err))} (log: {handle.paths.stderr})")
    return Outcome(job.name, str(handle.job_id), result["status"], result.get("error") or "", result)


def wait(plan: Plan, handles: Sequence[Any], poll_s: float = 10.0) -> Iterator[Outcome]:
    """Outcomes of the jobs as they finish."""
    submitit = import_submitit()
    by_id = {id(handle): job for job, handle in zip(plan.jobs, handles)}
    for handle in submitit.helpers.as_completed(list(handles), poll_frequency=poll_s):
        yield outcome(by_id[id(handle)], handle)


def follow_up(plan: Plan, handles: Sequence[Any], cluster: str) -> list[str]:
    """Commands to watch the jobs and to look at the experiments once they are pushed."""
    ids = [str(h.job_id) for h in handles]
    if cluster == "slurm":
        arrays = ",".join(dict.fromkeys(i.split("_")[0] for i in ids))
        watch = [f"squeue -j {arrays}", f"sacct -j {arrays} --format=JobID,JobName,State,Elapsed,ExitCode"]
    else:
        watch = [f"ps -o pid,etime,args -p {','.join(ids)}"]
    return [*watch, f"tail -f {handles[0].paths.stdout}" if handles else "", pull_command(plan), "dvc exp show"]


def pull_command(plan: Plan) -> str:
    """How to get the sweep's experiments into a clone of the git remote."""
    return f"git fetch {plan.git_remote} && dvc exp pull {plan.git_remote} {' '.join(job.name for job in plan.jobs)}"
