"""check-params beyond validation: a change that touches only another task's keys fails with the key to use (a
mixed change only warns), a dvc.yaml narrowed to another task fails, and tools/workspace.py's narrowing keeps the
selected task's sections and every key the tasks share."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from ednas_core.config import TASKS
from stages import check_params
from stages.check_params import (changed_keys, check_dvc_yaml, flat_params_text, locked_params,
                                 other_task_line)
from stages.common import StageError, key_task, read_params, run_stage
from tools.workspace import GIT_IDENTITY, PROJECT, narrow_to_task, set_params


@pytest.mark.parametrize("key, task", [("search.lr", "cifar10"), ("derive.mode", "cifar10"), ("evaluate", "cifar10"),
                                       ("digits.search.lr", "digits"), ("ptb.evaluate.bptt", "ptb"),
                                       ("markov", "markov"), ("task", None), ("runtime.seed", None),
                                       ("data.train_portion", None), ("tracking.progress", None)])
def test_key_task(key, task):
    assert key_task(key) == task


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A git repository whose last commit has the project's params.yaml with task: digits; cwd."""
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path / "params.yaml", {"task": "digits"})
    for args in (["init", "-q", "-b", "main"], ["add", "params.yaml"], ["commit", "-q", "-m", "baseline"]):
        subprocess.run(["git", *GIT_IDENTITY, *args], cwd=tmp_path, check=True, capture_output=True)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys) -> tuple[int, str, str]:
    try:
        run_stage("check-params", check_params.main)
        code = 0
    except SystemExit as exit:
        code = exit.code
    out = capsys.readouterr()
    return code, out.out, out.err


def test_only_another_tasks_key_fails_with_the_key_to_use(repo, capsys):
    set_params(repo / "params.yaml", {"search.lr": 0.1})  # CIFAR-10's child learning rate; the digits task runs
    code, out, err = run(capsys)
    assert code == 1 and out == ""
    assert err.splitlines() == [
        "check-params: error: search.lr belongs to task cifar10, but task is digits (which reads digits.search.lr); "
        "nothing will change — use -S digits.search.lr=..."]


def test_other_tasks_keys_with_the_tasks_own_only_warn(repo, capsys):
    set_params(repo / "params.yaml", {"search.lr": 0.1, "ptb.search.lr": 10.0, "digits.search.lr": 0.2})
    code, out, err = run(capsys)
    assert code == 0 and out == "check-params: params.yaml is valid (task: digits)\n"
    assert err.splitlines() == [
        "check-params: warning: search.lr, ptb.search.lr belong to tasks cifar10 and ptb, but task is digits (which "
        "reads digits.search.lr); that change does nothing — use -S digits.search.lr=..."]


def test_another_strategys_key_warns_with_the_strategy_key_to_set(repo, capsys):
    """digits runs ednas: its enas section is never read (QA: `dvc exp run -S nb201.search.enas.lr=0.01` while the
    strategy was rea reran the pipeline without a word). A warning, not an error: a grid over strategies sets one
    strategy's section for the runs of the others too."""
    set_params(repo / "params.yaml", {"digits.search.enas.lr": 0.01})
    code, out, err = run(capsys)
    assert code == 0 and out == "check-params: params.yaml is valid (task: digits)\n"
    assert err.splitlines() == [
        "check-params: warning: digits.search.enas.lr is read by strategy enas only, but digits.search.strategy is "
        "ednas; that change does nothing — add -S digits.search.strategy=enas to run it"]


def test_several_strategies_keys_are_named_together(repo, capsys):
    set_params(repo / "params.yaml", {"digits.search.nao.epochs": 5, "digits.search.evnas.elites": 2,
                                      "digits.search.lr": 0.2})
    code, out, err = run(capsys)
    assert code == 0 and out == "check-params: params.yaml is valid (task: digits)\n"
    assert err.splitlines() == [
        "check-params: warning: digits.search.evnas.elites, digits.search.nao.epochs are read by strategies evnas "
        "and nao only, but digits.search.strategy is ednas; that change does nothing — add "
        "-S digits.search.strategy=evnas to run it"]


def test_ednas_policy_keys_warn_under_another_strategy(repo, capsys):
    """search.policy_lr is EDNAS's (strategies.key_owners): under enas it does nothing; baseline_decay is read by
    random search too (its tracked moving average), so under random it passes silently."""
    set_params(repo / "params.yaml", {"digits.search.strategy": "enas", "digits.search.policy_lr": 0.01,
                                      "digits.search.baseline_decay": 0.9})
    code, out, err = run(capsys)
    assert code == 0 and out == "check-params: params.yaml is valid (task: digits)\n"
    assert err.splitlines() == [
        "check-params: warning: digits.search.policy_lr, digits.search.baseline_decay are read by strategies ednas "
        "and random only, but digits.search.strategy is enas; that change does nothing — add "
        "-S digits.search.strategy=ednas to run it"]
    set_params(repo / "params.yaml", {"digits.search.strategy": "random", "digits.search.policy_lr": 0.1})
    assert run(capsys) == (0, "check-params: params.yaml is valid (task: digits)\n", "")  # policy_lr as committed


def test_the_selected_strategys_own_section_passes(repo, capsys):
    set_params(repo / "params.yaml", {"digits.search.strategy": "nao", "digits.search.nao.epochs": 5})
    assert run(capsys) == (0, "check-params: params.yaml is valid (task: digits)\n", "")


def test_shared_or_own_keys_and_unchanged_files_pass_silently(repo, capsys):
    assert run(capsys) == (0, "check-params: params.yaml is valid (task: digits)\n", "")
    set_params(repo / "params.yaml", {"runtime.seed": 3, "digits.evaluate.epochs": 2})
    assert run(capsys) == (0, "check-params: params.yaml is valid (task: digits)\n", "")


def test_switching_task_is_the_tasks_own_change(repo, capsys):
    set_params(repo / "params.yaml", {"task": "ptb", "ptb.search.lr": 10.0})
    assert run(capsys)[:2] == (0, "check-params: params.yaml is valid (task: ptb)\n")


def test_a_key_the_task_lacks_suggests_switching_task(repo, capsys):
    set_params(repo / "params.yaml", {"ptb.search.bptt": 20})
    code, _, err = run(capsys)
    assert code == 1
    assert err.strip() == ("check-params: error: ptb.search.bptt belongs to task ptb, but task is digits (which has "
                           "no such key); nothing will change — run task ptb with -S task=ptb")


def test_outside_git_there_is_nothing_to_compare(tmp_path, monkeypatch, capsys):
    shutil.copy(PROJECT / "params.yaml", tmp_path / "params.yaml")
    set_params(tmp_path / "params.yaml", {"task": "digits", "search.lr": 0.1})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert run(capsys)[:2] == (0, "check-params: params.yaml is valid (task: digits)\n")


def test_validation_comes_first(repo, capsys):
    set_params(repo / "params.yaml", {"search.lr": -1})
    code, _, err = run(capsys)
    assert code == 1 and err.strip() == "check-params: error: search.lr: got -1; expected a number > 0"


def test_an_earlier_experiments_values_in_the_workspace_ran_already(repo, capsys):
    """`dvc exp run` starts from the workspace, which holds the last experiment's values (applied by DVC, not
    committed): they differ from the commit but not from dvc.lock, so another task's key alone still fails."""
    set_params(repo / "params.yaml", {"digits.search.lr": 0.05})  # the applied experiment, as dvc.lock has it
    (repo / "dvc.lock").write_text("schema: '2.0'\nstages:\n  search:\n    cmd: python -m stages.search\n"
                                   "    params:\n      params.yaml:\n        task: digits\n"
                                   "        digits.search:\n          lr: 0.05\n")
    set_params(repo / "params.yaml", {"search.lr": 0.1})
    code, _, err = run(capsys)
    assert code == 1 and "error: search.lr belongs to task cifar10" in err
    set_params(repo / "params.yaml", {"digits.search.lr": 0.2})  # a change of its own: only a warning
    code, _, err = run(capsys)
    assert code == 0 and "warning: search.lr belongs to task cifar10" in err


def test_locked_params_are_flat(tmp_path):
    lock = ("schema: '2.0'\nstages:\n  check-params:\n    cmd: x\n  search:\n    params:\n      params.yaml:\n"
            "        task: digits\n        data.train_portion: 0.8\n        runtime:\n          seed: 2\n"
            "        digits.search:\n          lr: 0.1\n          enas:\n            lr: 0.0035\n")
    path = tmp_path / "dvc.lock"
    path.write_text(lock)
    assert locked_params(path) == {"task": "digits", "data.train_portion": 0.8, "runtime.seed": 2,
                                   "digits.search.lr": 0.1, "digits.search.enas.lr": 0.0035}
    assert locked_params(path.with_name("missing.lock")) == {}


def test_changed_keys_lists_added_removed_and_changed():
    before = flat_params_text("task: digits\nsearch: {lr: 0.05, epochs: 3}\nruntime: {seed: 2}\n")
    now = flat_params_text("task: digits\nsearch: {lr: 0.1, epochs: 3, extra: 1}\n")
    assert changed_keys(now, before) == ["search.lr", "search.extra", "runtime.seed"]
    assert flat_params_text("not: [valid") == {} and flat_params_text(None) == {}


def test_many_keys_are_shortened():
    params = read_params(PROJECT / "params.yaml")[0]  # task cifar10
    keys = ["digits.search.lr", "digits.search.epochs", "digits.search.layers", "digits.evaluate.lr"]
    assert other_task_line(keys, params).startswith(
        "digits.search.lr, digits.search.epochs, digits.search.layers and 1 more belong to task digits, but task is "
        "cifar10 (which reads search.lr, search.epochs, search.layers); ")


@pytest.fixture(scope="module")
def narrowed(tmp_path_factory) -> dict[str, dict]:
    """The project's dvc.yaml narrowed to each task, loaded."""
    out = {}
    for task in TASKS:
        path = tmp_path_factory.mktemp(task) / "dvc.yaml"
        shutil.copy(PROJECT / "dvc.yaml", path)
        narrow_to_task(path, task)
        out[task] = YAML(typ="safe").load(path.read_text())
    return out


def stage_params(dvc_yaml: dict) -> dict[str, list[str]]:
    return {name: stage.get("params", []) for name, stage in dvc_yaml["stages"].items()}


def test_narrowing_keeps_the_tasks_sections_and_the_shared_keys(narrowed):
    project = YAML(typ="safe").load((PROJECT / "dvc.yaml").read_text())
    for task, dvc_yaml in narrowed.items():
        for name, keys in stage_params(dvc_yaml).items():
            everything = stage_params(project)[name]
            assert keys == [k for k in everything if key_task(k) in (None, task)], (task, name)
        # nothing else changed: outputs (persist), deps, metrics, plots
        for name, stage in dvc_yaml["stages"].items():
            assert {k: v for k, v in stage.items() if k != "params"} == \
                   {k: v for k, v in project["stages"][name].items() if k != "params"}
        assert dvc_yaml["plots"] == project["plots"] and dvc_yaml["artifacts"] == project["artifacts"]
    assert stage_params(narrowed["digits"])["search"] == ["task", "runtime", "data.train_portion", "digits.search"]
    assert stage_params(narrowed["cifar10"])["derive"] == ["task", "runtime", "data.train_portion", "search",
                                                           "derive"]


def test_a_narrowed_dvc_yaml_refuses_another_task(tmp_path):
    path = tmp_path / "dvc.yaml"
    shutil.copy(PROJECT / "dvc.yaml", path)
    check_dvc_yaml("markov", path)  # the project's: every task
    narrow_to_task(path, "digits")
    assert path.read_text().startswith("# This copy tracks only the params of task digits")
    check_dvc_yaml("digits", path)
    with pytest.raises(StageError, match=r"^task is markov, but .*dvc.yaml tracks the params of task digits only"):
        check_dvc_yaml("markov", path)
    check_dvc_yaml("markov", tmp_path / "missing.yaml")
