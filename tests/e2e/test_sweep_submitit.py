"""A sweep as a user runs it, with submitit's local executor standing in for SLURM: a tiny digits workspace in its
own git repository with a bare `origin`, a real MLflow server, and `python -m tools.sweep --executor local` over
1 seed x 2 strategies (the grid's expansion and names: tests/test_sweep.py). The 2 jobs succeed, their
experiments are in the remote, a second clone of the remote pulls and shows them, and the server holds each
pipeline's runs with their metric histories and artifacts.
Beside it, a sweep of 1 experiment whose git remote does not exist reports the refused push in one line while its
pipeline succeeded. The jobs run at once (3 tiny pipelines, one thread each: a few minutes on 2 cores)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from mlflow_server import mlflow_server
from pipeline import TINY, dvc
from tools.workspace import GIT_IDENTITY, dvc_env, make_workspace

pytestmark = pytest.mark.slow
GRID = ["-S", "runtime.seed=1", "-S", "digits.search.strategy=ednas,random"]
NAMES = ["sweep-ednas", "sweep-random"]  # the seed does not vary: not in the names
REFUSED = "refused-seed3"


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


@dataclass
class Sweeps:
    root: Path
    workspace: Path
    uri: str
    grid: subprocess.CompletedProcess      # the sweep of NAMES
    refused: subprocess.CompletedProcess   # the sweep of REFUSED, to a remote that does not exist


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory) -> Sweeps:
    root = tmp_path_factory.mktemp("sweep")
    ws = make_workspace(root / "repo", TINY)
    git(root, "init", "-q", "--bare", "-b", "main", "origin.git")
    git(ws, "remote", "add", "origin", str(root / "origin.git"))
    git(ws, "remote", "add", "gone", str(root / "gone.git"))  # never created
    git(ws, "push", "-q", "origin", "main")
    with mlflow_server(root / "mlflow") as uri:
        command = [sys.executable, "-m", "tools.sweep", "--executor", "local", "--cpus-per-job", "1",
                   "--time-min", "30", "--workdir", str(root / "work")]
        env = {**dvc_env(), "MLFLOW_TRACKING_URI": uri}
        started = [subprocess.Popen(command + args, cwd=ws, env=env, text=True, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
                   for args in (GRID, ["--name-prefix", "refused", "--git-remote", "gone", "-S", "runtime.seed=3"])]
        done = [subprocess.CompletedProcess(p.args, 0, *p.communicate(timeout=1800)) for p in started]
        for process, result in zip(started, done):
            result.returncode = process.returncode
        yield Sweeps(root, ws, uri, *done)


def job_lines(done: subprocess.CompletedProcess) -> dict[str, list[str]]:
    """The sweep's line per finished job: name -> [job, id, state words..., error]."""
    lines = [line.split("  ") for line in done.stdout.splitlines() if "  job " in line and not line.startswith(" ")]
    return {parts[0]: parts[1:] for parts in lines}


def test_the_jobs_of_the_grid_succeed(sweeps):
    assert sweeps.grid.returncode == 0, sweeps.grid.stdout + sweeps.grid.stderr
    lines = job_lines(sweeps.grid)
    assert sorted(lines) == NAMES and all(parts[1] == "succeeded" for parts in lines.values()), sweeps.grid.stdout
    assert "sweep: 2 of 2 experiments succeeded" in sweeps.grid.stdout
    assert "MLFLOW_TRACKING_URI" not in sweeps.grid.stderr  # the server is set and answers: no warning


def test_the_experiments_are_in_the_git_remote(sweeps):
    baseline = git(sweeps.workspace, "rev-parse", "HEAD").strip()
    refs = git(sweeps.workspace, "ls-remote", "origin", "refs/exps/*").split()[1::2]
    assert sorted(refs) == [f"refs/exps/{baseline[:2]}/{baseline[2:]}/{name}" for name in NAMES]


def test_a_clone_of_the_remote_pulls_and_shows_them(sweeps):
    other = sweeps.root / "other"
    git(sweeps.root, "clone", "-q", str(sweeps.root / "origin.git"), str(other))
    dvc(other, "exp", "pull", "origin")  # every experiment of HEAD (the workspace has no DVC remote)
    assert sorted(dvc(other, "exp", "list", "--name-only").stdout.split()) == NAMES
    rows = json.loads(dvc(other, "exp", "show", "--json").stdout)
    shown = {exp["name"]: exp for row in rows for exp in row.get("experiments") or [] if exp.get("name")}
    assert sorted(shown) == NAMES, rows
    for name, exp in shown.items():
        data = exp["revs"][0]["data"]
        params = data["params"]["params.yaml"]["data"]
        assert name == f"sweep-{params['digits']['search']['strategy']}" and params["runtime"]["seed"] == 1
        assert data["metrics"]["metrics/evaluate.json"]["data"]["test_error"] > 0


def mlflow_runs(uri: str) -> dict[str, list]:
    """Every run of the server's ednas-digits experiment, by DVC experiment name."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("ednas-digits")
    by_name = defaultdict(list)
    for run in client.search_runs([experiment.experiment_id], max_results=1000):
        by_name[run.data.tags.get("dvc.exp_name", "")].append(run)
    return by_name


def logging_stages(workspace: Path) -> set[str]:
    """The stages of dvc.yaml whose script opens an MLflow run (check-params does not)."""
    stages = YAML(typ="safe").load((workspace / "dvc.yaml").read_text())["stages"]
    return {name for name, stage in stages.items()
            if "StageRun(" in (workspace / f"{stage['cmd'].split()[-1].replace('.', '/')}.py").read_text()}


def test_the_server_holds_every_pipeline_s_runs_histories_and_artifacts(sweeps):
    from mlflow.tracking import MlflowClient

    from ednas_core.tracking import PIPELINE_STAGE

    client = MlflowClient(tracking_uri=sweeps.uri)
    runs = mlflow_runs(sweeps.uri)
    stages = logging_stages(sweeps.workspace)
    assert {"prepare-data", "search", "derive", "evaluate", "report"} <= stages
    assert set(runs) == {*NAMES, REFUSED}  # the refused push's pipeline logged too
    epochs = TINY["digits.search.epochs"]
    for name in [*NAMES, REFUSED]:
        by_stage = {run.data.tags["ednas.stage"]: run for run in runs[name]}
        assert len(runs[name]) == len(stages) + 1 and set(by_stage) == stages | {PIPELINE_STAGE}, name
        assert all(run.info.status == "FINISHED" for run in runs[name]), name
        search = by_stage["search"]
        for key in ("child_loss", "child_acc"):
            assert sorted(m.step for m in client.get_metric_history(search.info.run_id, key)) == \
                list(range(1, epochs + 1)), (name, key)
        assert search.info.artifact_uri.startswith("mlflow-artifacts:")  # served by the server, not in a clone
        if search.data.tags["ednas.strategy"] == "ednas":
            policy = [f.path for f in client.list_artifacts(search.info.run_id, "policy")]
            assert policy == [f"policy/epoch_{e:04d}.json" for e in range(1, epochs + 1)], name
        assert {f.path for f in client.list_artifacts(by_stage["derive"].info.run_id, "derive")} >= {
            "derive/genotype.json"}, name


def test_a_refused_push_is_one_line_while_its_pipeline_succeeded(sweeps):
    assert sweeps.refused.returncode == 1, sweeps.refused.stdout + sweeps.refused.stderr
    [(name, parts)] = job_lines(sweeps.refused).items()
    assert name == REFUSED and parts[1] == "push failed", parts
    error = parts[2]
    assert error.startswith(f"dvc exp push to gone ({sweeps.root / 'gone.git'}) failed: ERROR: ") and \
        "No git repository was found" in error, error
    assert "sweep: 0 of 1 experiments succeeded" in sweeps.refused.stdout
    assert "commit" in sweeps.refused.stderr and "is on no branch of gone" in sweeps.refused.stderr  # warned
    clone = sweeps.root / "work" / REFUSED  # the experiment is there, in the job's clone, for a later push
    baseline = git(sweeps.workspace, "rev-parse", "HEAD").strip()
    assert git(clone, "rev-parse", "--verify", "-q", f"refs/exps/{baseline[:2]}/{baseline[2:]}/{REFUSED}").strip()
    assert not (sweeps.root / "gone.git").exists()
