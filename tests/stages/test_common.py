"""stages.common: reading params.yaml, one-line stage errors, atomic JSON/CSV writers, progress, epoch rows."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import shutil
import types
from pathlib import Path

import numpy as np
import pytest

from ednas_core.config import ConfigError, Params
from ednas_core.data import DataError
from stages import common
from ednas_core.epochs import NonFiniteError
from stages.common import Progress, StageError, epoch_rows, read_params, run_stage, write_csv, write_json

PARAMS_YAML = Path(__file__).parents[2] / "params.yaml"


# --- read_params --------------------------------------------------------------------------------------------

def test_read_params_missing_file(tmp_path):
    path = tmp_path / "params.yaml"
    with pytest.raises(ConfigError) as err:
        read_params(path)
    assert str(err.value) == f"{path}: not found; run the stage from the repository root"


@pytest.mark.parametrize("text, line", [("task: cifar10\nsearch:\n\tlr: 1\n", 3),
                                        ("task: cifar10\nsearch:\n  lr: [1, 2\n", 4)])
def test_read_params_broken_yaml(tmp_path, text, line):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_params(path)
    assert str(err.value) == f"{path}: not valid YAML at line {line}; fix the syntax"
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained YAML traceback


def test_read_params_valid_copy(tmp_path):
    path = tmp_path / "params.yaml"
    shutil.copy(PARAMS_YAML, path)
    params, text = read_params(path)
    assert params == Params()
    assert text == PARAMS_YAML.read_text()


def test_read_params_bad_value(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text(PARAMS_YAML.read_text().replace("  lr: 0.05 ", "  lr: -0.05 ", 1))
    with pytest.raises(ConfigError, match=r"^search\.lr: got -0\.05; expected a number > 0$"):
        read_params(path)


def test_read_params_empty_file(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing here\n")
    with pytest.raises(ConfigError, match=r"^task: missing"):
        read_params(path)


def line_of(text: str, line: str, start: int = 0) -> int:
    """1-based number of the first line of `text` that starts with `line`, after line `start`."""
    return next(n for n, got in enumerate(text.splitlines(), 1) if n > start and got.startswith(line))


def test_read_params_reads_yaml_as_dvc_does(tmp_path):
    """YAML 1.2 like DVC (ruamel.yaml): `amp: yes` is the string 'yes' for DVC, so the stage refuses it instead
    of running with amp on while `dvc params diff` shows a string."""
    from dvc.utils.serialize import parse_yaml

    path = tmp_path / "params.yaml"
    text = PARAMS_YAML.read_text().replace("  amp: true ", "  amp: yes ", 1)
    path.write_text(text)
    assert parse_yaml(text, str(path))["runtime"]["amp"] == "yes"
    with pytest.raises(ConfigError) as err:
        read_params(path)
    assert str(err.value) == ("runtime.amp: got 'yes'; expected true or false (params.yaml is YAML 1.2, as DVC "
                              "reads it: yes/no/on/off are strings)")


def test_read_params_gives_dvcs_values(tmp_path):
    from dvc.utils.serialize import parse_yaml

    from ednas_core.config import load_params

    path = tmp_path / "params.yaml"
    text = PARAMS_YAML.read_text().replace("  lr: 0.05 ", "  lr: 5e-2 ", 1)  # YAML 1.1 (PyYAML): a string
    path.write_text(text)
    params, _ = read_params(path)
    assert params.search.lr == 0.05
    assert params == load_params(parse_yaml(text, str(path)))


@pytest.mark.parametrize("where", ["top", "section", "task_section"])
def test_read_params_duplicate_key_is_named_with_its_line(tmp_path, where):
    """PyYAML kept the last of two equal keys silently; DVC refuses the file. One line: the key and both lines."""
    text = PARAMS_YAML.read_text()
    if where == "top":
        text += "task: digits\n"
        key, first = "task", line_of(text, "task:")
    elif where == "section":
        text = text.replace("  lr: 0.05 ", "  lr: 0.05\n  lr: 0.01 ", 1)
        key, first = "search.lr", line_of(text, "  lr: 0.05", line_of(text, "search:"))
    else:
        digits = line_of(text, "digits:")
        search = line_of(text, "  search:", digits)
        first = line_of(text, "    lr: ", search)
        lines = text.splitlines(keepends=True)
        lines.insert(first, lines[first - 1])  # the same key and value twice: still refused
        text = "".join(lines)
        key = "digits.search.lr"
    path = tmp_path / "params.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        read_params(path)
    second = line_of(text, text.splitlines()[first - 1].split(":")[0] + ":", first)
    assert str(err.value) == (f"{key}: duplicate key at line {second} of {path} (first at line {first}); "
                              "keep one of them")
    assert err.value.__cause__ is None and err.value.__context__ is None  # no YAML traceback behind it


def test_read_params_duplicate_key_in_a_list_of_mappings(tmp_path):
    path = tmp_path / "params.yaml"
    path.write_text("task: cifar10\nextra:\n  - {a: 1, a: 2}\n")
    with pytest.raises(ConfigError, match=r"^extra\[0\]\.a: duplicate key at line 3 of .* \(first at line 3\)"):
        read_params(path)


# --- run_stage ----------------------------------------------------------------------------------------------

@pytest.fixture
def no_debug(monkeypatch):
    monkeypatch.delenv("EDNAS_DEBUG", raising=False)


def raiser(err: BaseException):
    def body() -> None:
        raise err
    return body


def test_run_stage_expected_error_is_one_line_exit_1(no_debug, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_stage("name", raiser(ConfigError("x: bad")))
    assert exit_info.value.code == 1
    captured = capsys.readouterr()
    assert captured.err == "name: error: x: bad\n"
    assert captured.out == ""


@pytest.mark.parametrize("err", [StageError("metrics/search.json is missing"), DataError("no data\nmore detail"),
                                 FileNotFoundError("genotype.json"), ValueError("bad value")])
def test_run_stage_other_expected_errors(no_debug, capsys, err):
    with pytest.raises(SystemExit) as exit_info:
        run_stage("search", raiser(err))
    assert exit_info.value.code == 1
    lines = capsys.readouterr().err.splitlines()
    assert lines == [f"search: error: {str(err).splitlines()[0]}"]


@pytest.mark.parametrize("task, key", [("cifar10", "search.lr"), ("ptb", "ptb.search.lr"),
                                       ("digits", "digits.search.lr")])
def test_run_stage_divergence_names_the_keys_of_the_selected_task(no_debug, capsys, tmp_path, monkeypatch, task, key):
    """The library names CIFAR-10's keys; a ptb run must be told ptb.search.lr (search.lr is refused there)."""
    text = PARAMS_YAML.read_text()
    (tmp_path / "params.yaml").write_text(text.replace("task: cifar10 ", f"task: {task} ", 1))
    monkeypatch.chdir(tmp_path)
    err = NonFiniteError("search epoch 1: policy reward is nan; the shared weights diverged (lower search.lr "
                         "or search.grad_clip)")
    with pytest.raises(SystemExit):
        run_stage("search", raiser(err))
    assert capsys.readouterr().err == (f"search: error: search epoch 1: policy reward is nan; the shared weights "
                                       f"diverged (lower {key} or {key.replace('.lr', '.grad_clip')})\n")


def test_run_stage_empty_message_names_the_error(no_debug, capsys):
    with pytest.raises(SystemExit):
        run_stage("derive", raiser(StageError()))
    assert capsys.readouterr().err == "derive: error: StageError\n"


def test_run_stage_bug_keeps_traceback(no_debug, capsys):
    with pytest.raises(RuntimeError, match="a bug") as info:
        run_stage("search", raiser(RuntimeError("a bug")))
    assert info.traceback[-1].name == "body"  # the original traceback, not a re-raise
    assert capsys.readouterr().err == ""


def test_run_stage_debug_propagates_expected_errors(monkeypatch, capsys):
    monkeypatch.setenv("EDNAS_DEBUG", "1")
    with pytest.raises(ConfigError, match="x: bad"):
        run_stage("name", raiser(ConfigError("x: bad")))
    assert capsys.readouterr().err == ""


def test_run_stage_interrupt_exits_130(no_debug, capsys):
    with pytest.raises(SystemExit) as exit_info:
        run_stage("search", raiser(KeyboardInterrupt()))
    assert exit_info.value.code == 130
    assert capsys.readouterr().err.startswith("search: interrupted")


def test_run_stage_success_returns(no_debug, capsys):
    done = []
    run_stage("report", lambda: done.append(1))
    assert done == [1]
    assert capsys.readouterr().err == ""


# --- writers ------------------------------------------------------------------------------------------------

def test_write_json_complete_and_atomic(tmp_path):
    path = tmp_path / "metrics" / "search.json"
    data = {"epochs": 3, "child_acc": np.float32(0.5), "device": "cpu", "nested": {"a": [1, 2]}}
    write_json(path, data)
    text = path.read_text()
    assert text.endswith("}\n")
    assert json.loads(text) == {"epochs": 3, "child_acc": 0.5, "device": "cpu", "nested": {"a": [1, 2]}}
    assert list(json.loads(text)) == ["epochs", "child_acc", "device", "nested"]  # key order kept
    write_json(path, {"epochs": 4})  # overwrite in place
    assert json.loads(path.read_text()) == {"epochs": 4}
    assert [p.name for p in path.parent.iterdir()] == ["search.json"]  # no temp files left


def test_write_csv_complete_and_atomic(tmp_path):
    path = tmp_path / "metrics" / "epochs.csv"
    rows = [{"epoch": 1, "loss": 2.5, "acc": 0.1}, {"epoch": 2, "loss": 1.25, "acc": 0.4}]
    write_csv(path, rows)
    with path.open(newline="") as f:
        back = list(csv.DictReader(f))
    assert back == [{"epoch": "1", "loss": "2.5", "acc": "0.1"}, {"epoch": "2", "loss": "1.25", "acc": "0.4"}]
    assert path.read_text().splitlines()[0] == "epoch,loss,acc"
    assert [p.name for p in path.parent.iterdir()] == ["epochs.csv"]


def test_write_csv_takes_every_rows_keys(tmp_path):
    """A search resumed from a checkpoint of an earlier version has early epochs without the metrics added since
    (the NB201 answer probe): their cells are empty instead of the stage failing after the whole search."""
    path = tmp_path / "epochs.csv"
    write_csv(path, [{"epoch": 1, "loss": 2.5}, {"epoch": 2, "loss": 1.0, "answer_test_acc": 93.1}])
    with path.open(newline="") as f:
        back = list(csv.DictReader(f))
    assert back == [{"epoch": "1", "loss": "2.5", "answer_test_acc": ""},
                    {"epoch": "2", "loss": "1.0", "answer_test_acc": "93.1"}]


def test_history_arrays_take_every_epochs_metrics():
    from types import SimpleNamespace

    from stages.search import history_arrays

    def report(epoch, **metrics):
        return SimpleNamespace(epoch=epoch, metrics=metrics, probabilities={"p": np.ones(2) / 2},
                               counts={"p": np.zeros(2)})

    arrays = history_arrays(SimpleNamespace(history=[report(0, reward=0.5), report(1, reward=0.6, answer_rank=7.0)]))
    assert arrays["metric_reward"].tolist() == [0.5, 0.6]
    assert np.isnan(arrays["metric_answer_rank"][0]) and arrays["metric_answer_rank"][1] == 7.0


def test_write_csv_no_rows_raises(tmp_path):
    path = tmp_path / "empty.csv"
    with pytest.raises(ValueError, match="no rows"):
        write_csv(path, [])
    assert not path.exists()


# --- Progress -----------------------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def monotonic(self) -> float:
        return self.now


def fake_report(epoch: int, epochs: int, **metrics: float) -> types.SimpleNamespace:
    return types.SimpleNamespace(epoch=epoch, epochs=epochs, metrics=metrics)


@pytest.fixture
def clock(monkeypatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(common, "time", types.SimpleNamespace(monotonic=clock.monotonic))
    return clock


def test_progress_lines_one_line_per_epoch_with_eta(clock, capsys):
    progress = Progress("search", mode="lines", headline=("child_acc", "reward", "missing"))
    progress.on_progress("child", 5, 10)  # lines mode: no bar
    assert capsys.readouterr().err == ""
    clock.now += 10
    progress.on_epoch_end(fake_report(0, 3, child_acc=0.51234, reward=0.25, other=9.0))
    clock.now += 20
    progress.on_epoch_end(fake_report(1, 3, child_acc=0.6, reward=float("nan")))
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["search: epoch 1/3 child_acc=0.5123 reward=0.25 (10.0 s/epoch, ETA 0m20s)",
                     "search: epoch 2/3 child_acc=0.6 (15.0 s/epoch, ETA 0m15s)"]


def test_progress_eta_after_resume_counts_only_new_epochs(clock, capsys):
    progress = Progress("evaluate", mode="lines", headline=("test_acc",))
    progress.on_resume([fake_report(497, 600)])
    clock.now += 36
    progress.on_epoch_end(fake_report(498, 600, test_acc=0.9))
    lines = capsys.readouterr().err.splitlines()
    assert lines == ["evaluate: resuming after epoch 498 of 600",
                     "evaluate: epoch 499/600 test_acc=0.9 (36.0 s/epoch, ETA 1h00m)"]  # 101 epochs left


def test_progress_off_prints_nothing(clock, capsys):
    progress = Progress("search", mode="off", headline=("child_acc",))
    progress.on_resume([fake_report(0, 3)])
    progress.on_progress("child", 1, 10)
    clock.now += 5
    progress.on_epoch_end(fake_report(1, 3, child_acc=0.5))
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out == ""


def test_progress_auto_is_lines_when_not_a_terminal(monkeypatch):
    monkeypatch.setattr(common.sys, "stderr", types.SimpleNamespace(isatty=lambda: False))
    assert Progress("search").mode == "lines"


def bar_frames(err: str) -> list[str]:
    """What a terminal shows after each redraw of the bar: the text between carriage returns."""
    return [frame.strip() for frame in err.split("\r") if frame.strip()]


def test_progress_bar_moves_within_an_epoch_redrawn_by_time(clock, capsys, monkeypatch):
    """The demo's search epoch: 19 child steps of 0.4 s. The bar is redrawn about every second, not only at
    the end (it used to sit at 0/19), with the rate of the phase (1 / 0.4 s) and the time left."""
    monkeypatch.setenv("COLUMNS", "120")
    progress = Progress("search", mode="bar")
    progress.on_progress("child", 0, 19)
    for step in range(1, 20):
        clock.now += 0.4
        progress.on_progress("child", step, 19)
    frames = bar_frames(capsys.readouterr().err)
    counts = [int(re.search(r"(\d+)/19 \[", f).group(1)) for f in frames]
    assert counts == [0, 3, 6, 9, 12, 15, 18, 19]  # at step 0, then every >= 1 s, and the last step
    assert frames[0].startswith("search epoch 1 child:")
    assert "3/19 [00:01<00:06,  2.50batch/s]" in frames[1]  # 3 steps in 1.2 s; 16 left at 2.5/s: 6.4 s
    assert "19/19 [00:07<00:00,  2.50batch/s]" in frames[-1]


def test_progress_names_the_unit_of_a_phase_whose_steps_are_not_batches(clock, capsys, monkeypatch):
    """NAO's controller training counts passes over its pool: its line and bar say pass/s, the next phase batch/s."""
    progress = Progress("search", mode="lines")
    progress.on_progress("nao controller", 0, 1000, "pass")
    clock.now += 40.0
    progress.on_progress("nao controller", 100, 1000, "pass")
    progress.on_progress("child", 0, 10)
    clock.now += 40.0
    progress.on_progress("child", 4, 10)
    assert capsys.readouterr().err.splitlines() == [
        "search: epoch 1 nao controller 100/1000 (2.5 pass/s, nao controller ETA 6m00s)",
        "search: epoch 1 child 4/10 (0.1 batch/s, child ETA 1m00s)"]
    monkeypatch.setenv("COLUMNS", "120")
    bar = Progress("search", mode="bar")
    bar.on_progress("nao controller", 0, 1000, "pass")
    clock.now += 40.0
    bar.on_progress("nao controller", 100, 1000, "pass")
    assert "100/1000 [00:40<06:00,  2.50pass/s]" in bar_frames(capsys.readouterr().err)[-1]


def test_progress_bar_rate_of_each_phase_and_cleared_for_the_epoch_line(clock, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "120")
    progress = Progress("evaluate", mode="bar", headline=("test_acc",))
    progress.on_progress("train", 0, 24)
    clock.now += 12.0
    progress.on_progress("train", 24, 24)  # 2 batches/s over the phase
    progress.on_progress("test", 0, 5)  # a new phase: its own clock
    clock.now += 0.5
    progress.on_progress("test", 1, 5)
    assert progress.rate(clock.now) == (2.0, 2.0)  # 1 step in 0.5 s; 4 left
    clock.now += 4.0
    progress.on_progress("test", 5, 5)
    progress.on_epoch_end(fake_report(0, 20, test_acc=0.5))
    err = capsys.readouterr().err
    frames = bar_frames(err)
    assert "24/24 [00:12<00:00,  2.00batch/s]" in frames[1] and frames[2].startswith("evaluate epoch 1 test:")
    assert "5/5 [00:04<00:00,  1.11batch/s]" in frames[-2]  # 5 steps in 4.5 s: the whole phase, not the last step
    assert frames[-1] == "evaluate: epoch 1/20 test_acc=0.5 (16.5 s/epoch, ETA 5m13s)"
    assert err.endswith("\r" + " " * len(frames[-2]) + "\r" + frames[-1] + "\n")  # bar wiped before the line
    progress.on_progress("train", 0, 24)
    assert bar_frames(capsys.readouterr().err)[0].startswith("evaluate epoch 2/20 train:")


def test_progress_rate_is_steps_over_the_phase_time(clock):
    progress = Progress("search", mode="lines")
    progress.on_progress("child", 0, 19)
    assert progress.rate(clock.now)[0] is None
    for gap in (0.1, 0.1, 5.0, 0.3):  # uneven steps: the rate is the whole phase's
        clock.now += gap
        progress.on_progress("child", progress.step + 1, 19)
    assert progress.rate(clock.now) == pytest.approx((4 / 5.5, 15 * 5.5 / 4))


def test_progress_lines_in_ci_every_line_every_s_not_every_step(clock, capsys):
    progress = Progress("search", mode="lines", headline=("child_acc",))
    progress.on_progress("child", 0, 100)
    for step in range(1, 101):  # 100 steps of 1 s: a line after 30, 60 and 90 s
        clock.now += 1.0
        progress.on_progress("child", step, 100)
    progress.on_progress("policy", 0, 10)
    for step in range(1, 11):
        clock.now += 2.0
        progress.on_progress("policy", step, 10)
    progress.on_epoch_end(fake_report(0, 2, child_acc=0.5))
    progress.on_progress("child", 0, 100)
    clock.now += 29.0
    progress.on_progress("child", 1, 100)  # 29 s after the epoch line: nothing yet
    clock.now += 1.0
    progress.on_progress("child", 2, 100)
    assert capsys.readouterr().err.splitlines() == [
        "search: epoch 1 child 30/100 (1 batch/s, child ETA 1m10s)",
        "search: epoch 1 child 60/100 (1 batch/s, child ETA 0m40s)",
        "search: epoch 1 child 90/100 (1 batch/s, child ETA 0m10s)",
        "search: epoch 1 policy 10/10 (0.5 batch/s, policy ETA 0m00s)",  # 30 s after the last line
        "search: epoch 1/2 child_acc=0.5 (120.0 s/epoch, ETA 2m00s)",
        "search: epoch 2/2 child 2/100 (0.0667 batch/s, child ETA 24m30s)",
    ]


def test_progress_every_step_of_a_loop_reaches_the_bar(clock, capsys, monkeypatch):
    """Through the real loop: CheckpointedLoop.progress passes on every step (it used to pass every 20th,
    so an epoch of 19 steps showed nothing until its end)."""
    from ednas_core.epochs import CheckpointedLoop

    class Loop(CheckpointedLoop):
        report_type = types.SimpleNamespace

        def run_epoch(self, epoch):
            self.progress("child", 0, 19)
            for step in range(1, 20):
                clock.now += 0.5
                self.progress("child", step, 19)
            return fake_report(epoch, self.epochs, child_acc=0.5)

    monkeypatch.setenv("COLUMNS", "120")
    progress = Progress("search", mode="bar")
    Loop(1, None, [progress], "fp").run_epochs()
    counts = [int(m) for m in re.findall(r"(\d+)/19 \[", capsys.readouterr().err)]
    assert counts == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 19]


def test_duration_format():
    assert common._duration(0) == "0m00s"
    assert common._duration(59.9) == "0m59s"
    assert common._duration(3725) == "1h02m"


# --- epoch_rows ---------------------------------------------------------------------------------------------

def test_epoch_rows_number_from_one():
    history = [fake_report(0, 2, loss=1.23456789, acc=0.5), fake_report(1, 2, loss=0.5, acc=0.75)]
    assert epoch_rows(history) == [{"epoch": 1, "loss": 1.234568, "acc": 0.5},
                                   {"epoch": 2, "loss": 0.5, "acc": 0.75}]
    assert epoch_rows([]) == []
    assert list(epoch_rows(history)[0]) == ["epoch", "loss", "acc"]


def test_flat_params_keep_only_the_chosen_strategys_section():
    params = Params()
    params.search.strategy = "enas"
    flat = common.flat_params(params)
    assert flat["search.strategy"] == "enas" and flat["search.enas.lr"] == 0.0035
    assert not any(k.startswith(("search.evnas.", "search.nao.")) for k in flat)
    assert common.stage_tags(params) == {"ednas.strategy": "enas"}
    ptb = dataclasses.replace(Params(), task="ptb")
    ptb.ptb.search.strategy = "nao"
    flat = common.flat_params(ptb)
    assert "ptb.search.nao.update_every" in flat
    assert not any(k.startswith(("ptb.search.enas.", "ptb.search.evnas.")) for k in flat)
    digits = common.flat_params(dataclasses.replace(Params(), task="digits"))
    assert not any(k.startswith(("digits.search.enas.", "digits.search.evnas.", "digits.search.nao."))
                   for k in digits)  # digits runs ednas: its policy keys are search keys, no section of its own
    assert digits["digits.search.policy_lr"] == 0.1


@pytest.mark.parametrize("task, own", [("digits", "digits."), ("cifar10", ""), ("markov", "markov.")])
def test_flat_params_hold_only_what_the_runs_task_reads(task, own):
    flat = common.flat_params(dataclasses.replace(Params(), task=task))
    assert flat["task"] == task
    own_sections = {own.rstrip(".")} if own else {"search", "derive", "evaluate"}
    sections = {"task", "runtime", "data", "tracking"} | own_sections
    assert {k.split(".")[0] for k in flat} == sections
    others = [f"{t}." for t in ("digits", "ptb", "markov") if f"{t}." != own]
    if own:
        others += ["search.", "derive.", "evaluate."]  # CIFAR-10's sections: the top level
    assert not [k for k in flat if k.startswith(tuple(others))]  # a digits run has no cifar/ptb/markov keys
    for key in ("search.lr", "search.strategy", "derive.samples", "evaluate.epochs"):
        assert f"{own}{key}" in flat
    assert "runtime.seed" in flat and "data.train_portion" in flat and "tracking.policy_every" in flat
    assert len(flat) < 70  # of the 363 keys of every task and strategy


def test_epoch_rows_leave_unmeasured_values_empty():
    report = types.SimpleNamespace(epoch=0, metrics={"reward": 0.5, "baseline": float("nan")})
    assert epoch_rows([report]) == [{"epoch": 1, "reward": 0.5, "baseline": ""}]
