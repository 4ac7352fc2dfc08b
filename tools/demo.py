"""`make demo`: the whole real pipeline (`dvc repro` of all five stages) on the embedded digits task, CPU,
offline, in ./demo (a git + DVC copy of the project with task: digits, dvc.yaml narrowed to that task's params),
commits the run there as the baseline of later `dvc exp run` ablations, then says where everything is and how to
compare. `make demo-text` does the same for the recurrent search on a generated Markov-chain corpus, in ./demo-text."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import offline_plots
from .workspace import PROJECT, commit_run, dvc_env, make_workspace

DEMOS = {"digits": PROJECT / "demo", "markov": PROJECT / "demo-text"}
# ablations that change the demo's own result (its task's keys: digits.search.lr, not CIFAR-10's search.lr):
# (experiment name, -S override, what it is); README's demo paragraph lists the same
ABLATIONS = {
    "digits": [("lr-0.05", "digits.search.lr=0.05", "the child's learning rate (baseline 0.1)"),
               ("lr-0.2", "digits.search.lr=0.2", ""),
               ("seed-3", "runtime.seed=3", "the baseline's settings, another seed: the noise")],
    "markov": [("lr-10", "markov.search.lr=10", "the child's learning rate (baseline 20)"),
               ("seed-3", "runtime.seed=3", "the baseline's settings, another seed: the noise")],
}
# the comparison that fits a 120-column terminal: the columns that differ, without the Created column and the
# dependencies' hashes (params.yaml, files under data/ and metrics/); README says the same
EXP_SHOW = "dvc exp show --only-changed --drop 'Created|params.yaml|ednas_core|stages/|data/|metrics/[^:]*$'"


def reproduce(workspace: Path, task: str, **run: Any) -> tuple[int, bool]:
    """`dvc repro` in the workspace, then commits the run (dvc.lock, metrics, the .gitignore files DVC wrote) as the
    baseline that `dvc exp show` and `dvc metrics diff` compare ablations with; returns dvc's exit code and
    whether anything was committed."""
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=workspace, env=dvc_env(), **run)
    if done.returncode:
        return done.returncode, False
    return 0, commit_run(workspace, f"demo: baseline run of task {task} (dvc repro)")


def main(task: str = "digits") -> int:
    start = time.monotonic()
    workspace = make_workspace(DEMOS[task], {"task": task, "runtime.device": "cpu"})
    offline_plots.install(workspace)  # `dvc plots show` there renders without internet
    print(f"demo: running `dvc repro` in {workspace} (task: {task}, CPU)", flush=True)
    code, _ = reproduce(workspace, task)
    if code:
        print(f"demo: dvc repro failed (exit {code}); see the messages above", file=sys.stderr)
        return code
    search = {**json.loads((workspace / "metrics/search.json").read_text()),
              **json.loads((workspace / "metrics/info/search.json").read_text())}
    evaluate = json.loads((workspace / "metrics/evaluate.json").read_text())
    result = (f"test perplexity {evaluate['test_ppl']:.2f}" if "test_ppl" in evaluate
              else f"test error {evaluate['test_error']:.2f}%")
    name = workspace.name
    lines = [(f"dvc exp run --temp -n {n} -S {kv}", what) for n, kv, what in ABLATIONS[task]]
    lines += [(EXP_SHOW, ""), (f"dvc metrics diff main {ABLATIONS[task][0][0]}", "one of them against the baseline")]
    ablations = "\n".join(f"  {line}".ljust(56) + f"  # {what}" if what else f"  {line}" for line, what in lines)
    print(f"""
demo: finished in {time.monotonic() - start:.0f} s.
  search child accuracy rose from {search['first_epoch_child_acc']:.3f} (epoch 1) to {search['child_acc']:.3f} (epoch {search['epochs']})
  derived cell trained from scratch: {result} with {evaluate['params']:,} parameters
Outputs (in {workspace}):
  metrics/report.html (and .md)    the report with figures; metrics/*.json headline numbers; *_epochs.csv curves;
                                   metrics/info/*.json devices, MLflow run ids, md5s
  data/derive/genotype.json        the derived cell; data/search/ policy history; data/evaluate/model.safetensors weights
  mlflow.db, mlruns/               every stage's MLflow run (per-epoch metrics, policy vectors, artifacts)
  dvc.lock, metrics/ (git)         committed in {name}/: the baseline that the ablations below are compared with
Look at the runs:
  cd {name} && ../.venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db     (then open http://127.0.0.1:5000/#/experiments?workflowType=machine_learning)
  cd {name} && ../.venv/bin/dvc metrics show && ../.venv/bin/dvc plots show
Ablations (each reruns search, derive, evaluate and report; minutes):
  cd {name} && source ../.venv/bin/activate
{ablations}""")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "digits"))
