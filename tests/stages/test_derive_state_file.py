"""The derive stage reads data/search/supernet.safetensors and nothing in it can run code: a pickle placed there
(what torch.load would execute) is refused with one line and never unpickled; a supernet without the expected
entries is one line naming the file and saying to rerun the search."""

from __future__ import annotations

import io
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ednas_core.checkpoint import StateFileError, save_checkpoint
from ednas_core.config import DataConfig
from ednas_core.tasks import make_search, restore_search
from helpers import cpu_runtime, tiny_search_config

PROJECT = Path(__file__).resolve().parents[2]
SUPERNET = "data/search/supernet.safetensors"
RERUN = "rerun the search (dvc repro search)"


def derive_in(ws: Path) -> subprocess.CompletedProcess:
    """`python -m stages.derive` in a workspace holding params.yaml and whatever the test put there."""
    shutil.copy(PROJECT / "params.yaml", ws / "params.yaml")
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run([sys.executable, "-m", "stages.derive"], cwd=ws, env=env, capture_output=True, text=True,
                          timeout=300)


class MakesMarker:
    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return open, (self.marker, "w")


def payload(kind: str, marker: Path) -> bytes:
    state = {"child": {"net": MakesMarker(marker)}, "policy": {}, "fingerprint": "x"}
    if kind == "pickle":
        return pickle.dumps(state)
    buffer = io.BytesIO()
    torch.save(state, buffer)  # the format the supernet had before
    return buffer.getvalue()


@pytest.mark.parametrize("kind", ["torch.save", "pickle"])
def test_derive_refuses_a_pickled_supernet_without_running_it(tmp_path, kind):
    proof = tmp_path / "proof"
    torch.load(io.BytesIO(payload(kind, proof)), weights_only=False) if kind == "torch.save" else \
        pickle.loads(payload(kind, proof))
    assert proof.exists()  # the payload runs wherever a pickle is loaded
    marker = tmp_path / "marker"
    (tmp_path / "data/search").mkdir(parents=True)
    (tmp_path / SUPERNET).write_bytes(payload(kind, marker))
    done = derive_in(tmp_path)
    assert not marker.exists()
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"derive: error: {SUPERNET} cannot be read (cut short, or not a safetensors "
                                        f"file); {RERUN}"]


def test_derive_names_a_supernet_without_the_expected_entries(tmp_path):
    save_checkpoint({"child": {"net": {}}, "fingerprint": "x"}, tmp_path / SUPERNET)
    done = derive_in(tmp_path)
    assert done.returncode == 1
    assert done.stderr.splitlines() == [f"derive: error: {SUPERNET} does not hold the expected state (no entry "
                                        f"'policy'); {RERUN}"]


def test_restore_search_names_a_supernet_of_other_settings(pattern_dataset, tmp_path):
    source = tmp_path / "supernet.safetensors"
    search = make_search("digits", pattern_dataset, tiny_search_config(layers=3), DataConfig(), cpu_runtime(), None,
                         [], {})
    state = {"child": search.child.state_dict(), "policy": search.strategy.state_dict()}
    child, _ = restore_search("digits", pattern_dataset, tiny_search_config(layers=3), DataConfig(), cpu_runtime(),
                              state, source, RERUN)  # the matching settings restore
    assert child.net.state_dict().keys() == state["child"]["net"].keys()
    with pytest.raises(StateFileError) as err:
        restore_search("digits", pattern_dataset, tiny_search_config(layers=4), DataConfig(), cpu_runtime(), state,
                       source, RERUN)
    message = str(err.value)
    assert message.startswith(f"{source} does not hold the expected state (Error(s) in loading state_dict for")
    assert message.endswith(f"; {RERUN}") and "\n" not in message
    del state["policy"]["vectors"]
    with pytest.raises(StateFileError, match=r"\(no entry 'vectors'\)"):
        restore_search("digits", pattern_dataset, tiny_search_config(layers=3), DataConfig(), cpu_runtime(), state,
                       source, RERUN)


def test_restore_search_names_the_strategy_of_another_strategys_supernet(pattern_dataset, tmp_path):
    """derive run alone after search.strategy changed: the supernet's strategy entry (written by the search stage)
    names both strategies instead of the first policy entry the other strategy lacks."""
    source = tmp_path / "supernet.safetensors"
    search = make_search("digits", pattern_dataset, tiny_search_config(layers=3, strategy="nao"), DataConfig(),
                         cpu_runtime(), None, [], {})
    state = {"child": search.child.state_dict(), "policy": search.strategy.state_dict(), "strategy": "nao"}
    with pytest.raises(StateFileError) as err:
        restore_search("digits", pattern_dataset, tiny_search_config(layers=3), DataConfig(), cpu_runtime(), state,
                       source, RERUN)
    assert str(err.value) == (f"{source} holds the state of a search with strategy nao; the params ask for strategy "
                              f"ednas; {RERUN}")
    _, strategy = restore_search("digits", pattern_dataset, tiny_search_config(layers=3, strategy="nao"),
                                 DataConfig(), cpu_runtime(), state, source, RERUN)
    assert strategy.name == "nao" and strategy.pool == search.strategy.pool
