"""Helpers of the end-to-end tests: tiny pipeline parameters, running dvc and stages, reading MLflow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tools.workspace import dvc_env

TINY = {
    "task": "digits",
    "runtime.device": "cpu",
    "digits.search.epochs": 2,
    "digits.search.layers": 3,
    "digits.search.init_channels": 4,
    "digits.derive.samples": 10,
    "digits.evaluate.epochs": 1,
    "digits.evaluate.layers": 3,
    "digits.evaluate.init_channels": 4,
}

# NAO: a round every epoch, on a pool of 40 (the demo's 200 cost a minute here and test nothing more)
NAO_SMALL = {"digits.search.nao.update_every": 1, "digits.search.nao.seed_architectures": 40,
             "digits.search.nao.new_architectures": 16, "digits.search.nao.random_architectures": 4,
             "digits.search.nao.top_k": 8, "digits.search.nao.epochs": 20}


def set_args(params: dict) -> tuple[str, ...]:
    """`-S key=value` arguments of `dvc exp run` that set `params`."""
    return tuple(arg for key, value in params.items() for arg in ("-S", f"{key}={value}"))


def dvc(workspace: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=workspace, env=dvc_env(), capture_output=True,
                          text=True, timeout=900)
    if check and done.returncode:
        raise AssertionError(f"dvc {' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def stage(workspace: Path, name: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"stages.{name}"], cwd=workspace, env=dvc_env(),
                          capture_output=True, text=True, timeout=600)


def mlflow_runs(workspace: Path, task: str = "digits", parents: bool = False) -> list:
    """The stage runs of the task's experiment, or (parents) the pipelines' parent runs."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{workspace / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(f"ednas-{task}")
    return client.search_runs([experiment.experiment_id], max_results=1000,
                              filter_string=f"tags.`ednas.stage` {'=' if parents else '!='} 'pipeline'")
