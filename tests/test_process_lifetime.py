"""process_lifetime: a stage ends when the process that started it (DVC, or the stage that re-launched torchrun)
is killed outright, instead of running on alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ednas_core.process_lifetime import end_with_parent
from ednas_core.tracking import process_alive

PROJECT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")

# the parent: starts the child (the stage), prints its pid, then waits for it as DVC does
PARENT = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", sys.argv[1]], stdout=sys.stdout)
print(child.pid, flush=True)
child.wait()
"""
CHILD = """
import os, time
from ednas_core.process_lifetime import end_with_parent
if os.environ.get("END_WITH_PARENT"):
    assert end_with_parent()
print("ready", flush=True)
time.sleep(120)
"""


def orphan_after_parent_killed(end: bool) -> bool:
    """Whether the child still runs 5 s after its parent was SIGKILLed."""
    env = {**os.environ, "PYTHONPATH": str(PROJECT), **({"END_WITH_PARENT": "1"} if end else {})}
    parent = subprocess.Popen([sys.executable, "-c", PARENT, CHILD], stdout=subprocess.PIPE, text=True, env=env)
    child = int(parent.stdout.readline())
    assert parent.stdout.readline().strip() == "ready"
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 5
    while process_alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    running = process_alive(child)
    if running:
        os.kill(child, signal.SIGKILL)
    return running


def test_child_ends_when_its_parent_is_killed():
    assert not orphan_after_parent_killed(end=True)


def test_without_it_the_child_runs_on():  # what `dvc queue kill --force` left behind
    assert orphan_after_parent_killed(end=False)


def test_stage_under_dvc_asks_for_it(monkeypatch):
    import stages.common as common

    calls = []
    monkeypatch.setattr(common, "end_with_parent", lambda: calls.append(True))
    monkeypatch.setenv("DVC_STAGE", "search")
    common.run_stage("check-params", lambda: None)
    monkeypatch.delenv("DVC_STAGE")
    common.run_stage("check-params", lambda: None)   # run by hand (python -m stages.search): left as it is
    assert calls == [True]


def test_returns_whether_it_is_set():
    assert end_with_parent(0) is True  # signal 0: clears the setting again
