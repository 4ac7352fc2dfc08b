"""tools.relocate_mlruns: a workspace moved elsewhere reads its MLflow artifacts again."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from ednas_core.tracking import StageRun
from tools.relocate_mlruns import main


def test_a_moved_workspace_reads_its_artifacts_after_relocate_mlruns(tmp_path, monkeypatch, capsys):
    first, moved = tmp_path / "first", tmp_path / "moved"
    first.mkdir()
    monkeypatch.chdir(first)  # as a stage runs (MLflow puts its Default experiment in <cwd>/mlruns/0)
    monkeypatch.setenv("DVC_ROOT", str(first))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with StageRun("search", "digits", {"task": "digits"}, "task: digits\n") as run:  # and its parent run
        run.log_dict({"epoch": 1}, "policy/epoch_0001.json")
    monkeypatch.chdir(tmp_path)
    shutil.move(first, moved)

    client = MlflowClient(tracking_uri=f"sqlite:///{moved}/mlflow.db")
    with pytest.raises(MlflowException, match="Failed to download artifacts"):
        client.download_artifacts(run.run_id, "policy/epoch_0001.json", str(tmp_path))

    assert main([str(moved), "--dry-run"]) == 0
    assert capsys.readouterr().out == (f"relocate_mlruns: the artifact locations in {first / 'mlruns'} "
                                       f"(experiments: 2, runs: 2) would point to {moved / 'mlruns'}\n")
    monkeypatch.chdir(moved)
    assert main([]) == 0  # the workspace in the working directory
    assert "(experiments: 2, runs: 2) now point to" in capsys.readouterr().out
    local = client.download_artifacts(run.run_id, "policy/epoch_0001.json", str(tmp_path))
    assert json.loads(Path(local).read_text()) == {"epoch": 1}

    assert main([str(moved)]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_usage_and_a_folder_without_a_database(tmp_path, capsys):
    assert main(["a", "b"]) == 2
    assert main([str(tmp_path)]) == 1
    assert "no MLflow database here" in capsys.readouterr().err
