"""MLflowPolicyFigures: the policy heatmap PNG is logged every heatmap_every epochs and at the last epoch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from ednas_core.strategies.ednas import PolicyVectors
from ednas_core.search import EpochReport
from ednas_core.spaces import CNN_SPACE
from ednas_core.tracking import MLflowPolicyFigures, StageRun


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One SQLite store for the module (creating its schema takes seconds)."""
    return tmp_path_factory.mktemp("mlflow")


@pytest.fixture
def run(store, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(store))
    with StageRun("search", "digits", {"task": "digits"}, "task: digits\n", root=store) as stage_run:
        yield stage_run


def report(epoch, epochs):
    probs = PolicyVectors(CNN_SPACE, init_std=1.0, generator=torch.Generator().manual_seed(epoch)).probabilities()
    return EpochReport(epoch=epoch, epochs=epochs, metrics={}, probabilities=probs,
                       counts={t: np.zeros((14, 7), np.int64) for t in CNN_SPACE.cell_types})


def test_heatmap_logged_every_n_epochs_and_at_the_last(run):
    callback = MLflowPolicyFigures(run, every=2)
    for epoch in range(5):
        callback.on_epoch_end(report(epoch, 5))
    client = MlflowClient(tracking_uri=run.client.tracking_uri)
    files = sorted(a.path for a in client.list_artifacts(run.run_id, "figures"))
    assert files == ["figures/policy_epoch_0002.png", "figures/policy_epoch_0004.png", "figures/policy_epoch_0005.png"]
    local = client.download_artifacts(run.run_id, "figures/policy_epoch_0004.png")
    with open(local, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_resume_logs_the_figures_already_due(run):
    callback = MLflowPolicyFigures(run, every=10)
    callback.on_resume([report(e, 12) for e in range(10)])
    client = MlflowClient(tracking_uri=run.client.tracking_uri)
    assert [a.path for a in client.list_artifacts(run.run_id, "figures")] == ["figures/policy_epoch_0010.png"]


def test_every_must_be_positive(run):
    with pytest.raises(ValueError):
        MLflowPolicyFigures(run, every=0)
