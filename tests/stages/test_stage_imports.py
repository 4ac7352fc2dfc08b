"""What a stage process loads before it starts work: every `dvc repro` starts six of them (check-params to report).
torchvision (1.3 s: it loads torch._dynamo through torchvision.models) and pandas (0.4 s) were once imported at the
top of ednas_core.data and paid by every stage of every task; they are imported where the ImageNet task decodes
images and where a NAS-Bench-201 CSV is read. MLflow, scipy and scikit-learn load when a run is logged, a study is
tested or the digits are read."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tools.workspace import PROJECT

STAGES = ("check_params", "prepare_data", "search", "derive", "evaluate", "report")
LOADED_WHEN_USED = ("torchvision", "pandas", "mlflow", "scipy", "sklearn")


@pytest.mark.parametrize("stage", STAGES)
def test_importing_a_stage_leaves_the_heavy_libraries_for_later(stage):
    probe = (f"import sys, stages.{stage}; "
             f"print(' '.join(m for m in {LOADED_WHEN_USED!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=PROJECT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"stages.{stage} imports {done.stdout.strip()} at start-up"
