"""A failed `dvc repro` loses nothing: DVC deletes a stage's outputs before running it unless they are
`persist: true`, so a bad parameter used to cost the supernet, the policy history and the metrics of the last
good run. And a typo that only adds an unknown key (`-S +serach.lr=...`) must fail, not record an experiment
that ran nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from pipeline import dvc
from tools.workspace import set_params

pytestmark = pytest.mark.slow
OUTPUT_DIRS = ("data/prepared", "data/search", "data/derive", "data/evaluate", "metrics")
EXPECTED = ("data/prepared/dataset.pt", "data/prepared/manifest.json", "metrics/prepare.json",
            "data/search/supernet.safetensors", "data/search/policy_history.npz", "data/search/final_policy.json",
            "metrics/search.json", "metrics/search_epochs.csv", "data/derive/genotype.json", "metrics/derive.json",
            "data/evaluate/model.safetensors", "metrics/evaluate.json", "metrics/evaluate_epochs.csv",
            "metrics/report.md", "metrics/figures/policy_final.png")


def snapshot(ws: Path) -> dict[str, str]:
    """md5 of every output file of every stage (the cache: false metrics and the figures included); checks
    first that the good run's outputs are all there, so that a test cannot pass on what an earlier one lost."""
    files = {str(p.relative_to(ws)): hashlib.md5(p.read_bytes()).hexdigest()
             for folder in OUTPUT_DIRS for p in sorted((ws / folder).rglob("*")) if p.is_file()}
    assert set(EXPECTED) <= set(files), f"outputs missing before the test: {sorted(set(EXPECTED) - set(files))}"
    return files


@pytest.fixture
def restored_params(workspace):
    path = workspace / "params.yaml"
    original = path.read_bytes()
    yield path
    path.write_bytes(original)


@pytest.mark.parametrize("target", ["", "search", "evaluate"])
def test_bad_parameter_under_dvc_repro_keeps_every_output(workspace, restored_params, target):
    """`dvc repro search` runs only the search (not check-params): its own validation fails after DVC has
    prepared the stage, which is where non-persistent outputs were deleted."""
    before = snapshot(workspace)
    key = "digits.evaluate.lr" if target == "evaluate" else "digits.search.lr"
    set_params(restored_params, {key: -1})
    done = dvc(workspace, "repro", *([target] if target else []), check=False)
    assert done.returncode != 0
    assert f"{key}: got -1; expected a number > 0" in done.stdout + done.stderr
    assert snapshot(workspace) == before


def test_empty_params_file_keeps_the_prepared_data(workspace, restored_params):
    before = snapshot(workspace)
    # the two keys prepare-data depends on, one changed (so DVC runs it), everything else missing
    restored_params.write_text("# emptied by mistake\ntask: digits\ndata: {root: data/elsewhere}\n")
    done = dvc(workspace, "repro", "prepare-data", check=False)
    assert done.returncode != 0
    assert "prepare-data: error: runtime: missing" in done.stdout + done.stderr
    assert snapshot(workspace) == before


def test_unknown_key_added_by_exp_run_fails(workspace, restored_params):
    before = snapshot(workspace)
    experiments = dvc(workspace, "exp", "list", "--name-only").stdout.split()
    done = dvc(workspace, "exp", "run", "-n", "typo", "-S", "+serach.lr=0.01", check=False)
    assert done.returncode != 0
    assert "check-params: error: serach: unknown key; did you mean search?" in done.stdout + done.stderr
    assert "Running stage 'search'" not in done.stdout  # refused before any stage ran
    assert "typo" not in dvc(workspace, "exp", "list", "--name-only").stdout.split()
    assert dvc(workspace, "exp", "list", "--name-only").stdout.split() == experiments
    assert snapshot(workspace) == before
