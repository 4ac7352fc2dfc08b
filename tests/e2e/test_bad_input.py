"""Bad input stops a stage before it touches anything: one line naming the key (or file) and what is allowed,
exit code 1, outputs of the earlier run unchanged. A run that diverges is marked FAILED in MLflow."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from pipeline import mlflow_runs, stage
from tools.workspace import set_params

pytestmark = pytest.mark.slow
OUTPUTS = ["metrics/search.json", "data/search/supernet.safetensors", "metrics/evaluate.json",
           "data/evaluate/model.safetensors", "data/derive/genotype.json"]


def snapshot(ws: Path) -> dict[str, str]:
    return {rel: hashlib.md5((ws / rel).read_bytes()).hexdigest() for rel in OUTPUTS}


@pytest.fixture
def params_restored(workspace):
    original = (workspace / "params.yaml").read_bytes()
    yield workspace / "params.yaml"
    (workspace / "params.yaml").write_bytes(original)


@pytest.mark.parametrize("key, value, message", [
    ("digits.search.lr", -1, "digits.search.lr: got -1; expected a number > 0"),
    ("digits.search.lr", "fast", "digits.search.lr: got 'fast'; expected a number > 0"),
    ("task", "mnist", "task: got 'mnist'; expected one of cifar10, digits, ptb, markov, nb201, imagenet"),
    ("digits.search.batch_size", 0, "digits.search.batch_size: got 0; expected an integer >= 1"),
    ("digits.search.alternate", "sometimes", "digits.search.alternate: got 'sometimes'; expected one of epoch, step"),
    ("runtime.device", "tpu", "runtime.device: got 'tpu'; expected auto, cpu, cuda or cuda:N"),
    ("digits.search.strategy", "darts",
     "digits.search.strategy: got 'darts'; expected one of ednas, random, enas, evnas, nao, rea"),
    ("digits.search.enas.num_aggregate", 0, "digits.search.enas.num_aggregate: got 0; expected an integer >= 1"),
    ("digits.search.evnas.elites", 20, "digits.search.evnas.elites: got 20; expected fewer than "
     "digits.search.evnas.population_size (20) (otherwise no child is ever bred)"),
    ("digits.search.nao.trade_off", -0.5, "digits.search.nao.trade_off: got -0.5; expected a number >= 0 and <= 1"),
    ("runtime.seed", 2**64, "runtime.seed: got 18446744073709551616; expected an integer >= 0 and <= 4294967295"),
])
def test_bad_param_fails_before_any_output(workspace, params_restored, key, value, message):
    before = snapshot(workspace)
    set_params(params_restored, {key: value})
    done = stage(workspace, "search")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"search: error: {message}"]
    assert snapshot(workspace) == before


def test_missing_key_is_named(workspace, params_restored):
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(params_restored.read_text())
    del data["digits"]["search"]["momentum"]
    with open(params_restored, "w") as f:
        yaml.dump(data, f)
    done = stage(workspace, "derive")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == ["derive: error: digits.search.momentum: missing; "
                                                 "add it to params.yaml (default 0.9)"]


@pytest.mark.parametrize("old, new, message", [
    ("  amp: true", "  amp: yes", "runtime.amp: got 'yes'; expected true or false (params.yaml is YAML 1.2, as DVC "
     "reads it: yes/no/on/off are strings)"),
    ("tracking:", "serach:\n  lr: 0.01\ntracking:", "serach: unknown key; did you mean search? known keys of params: "
     "task, runtime, data, search, derive, evaluate, digits, ptb, markov, nb201, imagenet, tracking"),
    ("  seed: 2", "  seed: 2\n  seed: 3", "runtime.seed: duplicate key at line {line} of params.yaml (first at line "
     "{first}); keep one of them"),
], ids=["yaml11_boolean_word", "unknown_top_level_key", "duplicate_key"])
def test_params_text_read_as_dvc_reads_it(workspace, params_restored, old, new, message):
    """params.yaml is read as YAML 1.2 like DVC: `yes` is a string, a duplicate key is refused, a typo of a
    section is named with the section it resembles."""
    before = snapshot(workspace)
    text = params_restored.read_text()
    assert old in text
    first = text[:text.index(old)].count("\n") + 1  # the line of the change
    params_restored.write_text(text.replace(old, new, 1))
    done = stage(workspace, "search")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [f"search: error: {message.format(first=first, line=first + 1)}"]
    assert snapshot(workspace) == before


@pytest.mark.parametrize("portion, sizes", [(0.0003, "0 for the weights and 1497 for the policy"),
                                            (0.9999, "1497 for the weights and 0 for the policy")])
def test_train_portion_leaving_a_part_without_a_batch_fails_before_anything_is_written(workspace, params_restored,
                                                                                        portion, sizes):
    """0.0003 trained the weights on 0 images and reported child_loss=0; now refused before the MLflow run."""
    before, runs = snapshot(workspace), len(mlflow_runs(workspace))
    set_params(params_restored, {"data.train_portion": portion})
    done = stage(workspace, "search")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"search: error: data.train_portion: got {portion}, which splits 1497 training images into {sizes}; each "
        "part needs at least one batch (digits.search.batch_size 64, digits.search.policy_batch_size 64): use a "
        "value from 0.043 to 0.957"]
    assert snapshot(workspace) == before and len(mlflow_runs(workspace)) == runs


def test_genotype_file_that_is_a_list_is_named(workspace, params_restored):
    before = snapshot(workspace)
    genotype = json.loads((workspace / "data/derive/genotype.json").read_text())
    (workspace / "list_genotype.json").write_text(json.dumps(genotype["normal"]))
    set_params(params_restored, {"digits.evaluate.genotype": "list_genotype.json"})
    done = stage(workspace, "evaluate")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        'evaluate: error: genotype file list_genotype.json: expected a JSON object {"normal": [[op, input], ...], '
        '"reduce": [[op, input], ...]} (a recurrent cell: {"space": "rnn", "recurrent": [[op, input], ...]}), got a '
        'list']
    assert snapshot(workspace) == before


def test_unknown_op_in_a_genotype_file_is_named(workspace, params_restored):
    before = snapshot(workspace)
    genotype = json.loads((workspace / "data/derive/genotype.json").read_text())
    genotype["normal"][3][0] = "conv_9x9"
    (workspace / "bad_genotype.json").write_text(json.dumps(genotype))
    set_params(params_restored, {"digits.evaluate.genotype": "bad_genotype.json"})
    done = stage(workspace, "evaluate")
    assert done.returncode == 1
    line, = done.stderr.strip().splitlines()
    assert "unknown op 'conv_9x9'" in line and "sep_conv_3x3" in line
    assert snapshot(workspace) == before


def test_broken_yaml_is_reported_with_its_line(workspace, params_restored):
    params_restored.write_text(params_restored.read_text() + "\nsearch: [unclosed\n")
    done = stage(workspace, "search")
    assert done.returncode == 1 and "params.yaml: not valid YAML at line" in done.stderr


def test_corrupt_prepared_data_is_detected(workspace):
    dataset = workspace / "data/prepared/dataset.pt"
    backup = dataset.with_suffix(".bak")
    shutil.copy2(dataset, backup)
    try:
        with open(dataset, "r+b") as f:
            f.seek(1000)
            f.write(b"\x00garbage\x00")
        done = stage(workspace, "search")
        assert done.returncode == 1 and "is corrupt" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    finally:
        shutil.move(backup, dataset)


def test_diverging_search_fails_cleanly_and_is_marked_failed(workspace, params_restored):
    before = snapshot(workspace)
    set_params(params_restored, {"digits.search.lr": 1.0e30})
    done = stage(workspace, "search")
    assert done.returncode == 1
    line, = done.stderr.strip().splitlines()[-1:]
    assert "search: error:" in line and "diverged" in line
    assert snapshot(workspace) == before
    failed = [r for r in mlflow_runs(workspace) if r.info.status == "FAILED"]
    assert failed and "diverged" in failed[-1].data.tags["error"]
    (workspace / "data/search/checkpoint.safetensors").unlink(missing_ok=True)


def test_a_tracking_server_that_does_not_answer_is_named_and_nothing_is_written(workspace, monkeypatch):
    """MLFLOW_TRACKING_URI pointing at no server: one line within seconds (not MLflow's minutes of retries)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{sock.getsockname()[1]}"
    before = snapshot(workspace)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    done = stage(workspace, "search")
    assert done.returncode == 1
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"search: error: MLFLOW_TRACKING_URI={uri}: no MLflow server answers (")
    assert line.endswith("or unset MLFLOW_TRACKING_URI to log to mlflow.db here")
    assert snapshot(workspace) == before
