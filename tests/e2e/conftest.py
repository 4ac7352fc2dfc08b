"""A real pipeline workspace for the end-to-end tests: the project copied into a temporary git repository,
tiny digits parameters, and one real `dvc repro`, committed as the baseline (shared by the tests of this folder)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline import TINY, dvc
from tools.workspace import commit_run, make_workspace


@pytest.fixture(scope="session")
def workspace(tmp_path_factory) -> Path:
    ws = make_workspace(tmp_path_factory.mktemp("pipeline") / "repo", TINY)
    done = dvc(ws, "repro")
    (ws / "repro.log").write_text(done.stdout + done.stderr)
    commit_run(ws, "baseline run")  # as a user (and `make demo`) does: the baseline of `dvc exp` comparisons
    return ws
