"""`make demo`: the whole real pipeline (`dvc repro` of all five stages) on the embedded digits task, CPU,
offline, in ./demo (a git + DVC copy of the project with task: digits), then says where everything is.
`make demo-text` does the same for the recurrent search on a generated Markov-chain corpus, in ./demo-text."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from .workspace import PROJECT, dvc_env, make_workspace

DEMOS = {"digits": PROJECT / "demo", "markov": PROJECT / "demo-text"}


def main(task: str = "digits") -> int:
    start = time.monotonic()
    workspace = make_workspace(DEMOS[task], {"task": task, "runtime.device": "cpu"})
    print(f"demo: running `dvc repro` in {workspace} (task: {task}, CPU)", flush=True)
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=workspace, env=dvc_env())
    if done.returncode:
        print(f"demo: dvc repro failed (exit {done.returncode}); see the messages above", file=sys.stderr)
        return done.returncode
    search = json.loads((workspace / "metrics/search.json").read_text())
    evaluate = json.loads((workspace / "metrics/evaluate.json").read_text())
    result = (f"test perplexity {evaluate['test_ppl']:.2f}" if "test_ppl" in evaluate
              else f"test error {evaluate['test_error']:.2f}%")
    name = workspace.name
    print(f"""
demo: finished in {time.monotonic() - start:.0f} s.
  search child accuracy rose from {search['first_epoch_child_acc']:.3f} (epoch 1) to {search['child_acc']:.3f} (epoch {search['epochs']})
  derived cell trained from scratch: {result} with {evaluate['params']:,} parameters
Outputs (in {workspace}):
  metrics/report.html (and .md)    the report with figures; metrics/*.json headline numbers; *_epochs.csv curves
  data/derive/genotype.json        the derived cell; data/search/ policy history; data/evaluate/model.safetensors weights
  mlflow.db, mlruns/               every stage's MLflow run (per-epoch metrics, policy vectors, artifacts)
Look at the runs:
  cd {name} && ../.venv/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db     (then open http://127.0.0.1:5000)
  cd {name} && ../.venv/bin/dvc metrics show && ../.venv/bin/dvc plots show""")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "digits"))
