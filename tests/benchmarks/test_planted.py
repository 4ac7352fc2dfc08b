"""The planted-cell benchmark (benchmarks/planted.py): one search per strategy and seed through the real loop; on
the NAS-Bench-201 space REA finds the planted cell within its 300 rewards, random search does not; the CNN and
RNN spaces with their tasks' settings."""

from __future__ import annotations

import pytest

from benchmarks.planted import main, planted_run, with_settings
from ednas_core.config import RNNSearchConfig, nb201_search_defaults
from ednas_core.spaces import NB201_SPACE
from ednas_core.synthetic import planted_architecture


def test_rea_finds_the_planted_cell_and_random_search_does_not():
    rea = planted_run("rea", seed=0, epochs=15)
    assert rea["rewards"] == 300 and rea["found"] and rea["final_reward"] == 1.0
    assert 1 <= rea["first_hit"] <= 300
    assert rea["final_codes"] == rea["planted_codes"] and len(rea["planted_codes"]) == 6
    edges = NB201_SPACE.cell.edge_codes(planted_architecture(NB201_SPACE, seed=0)["cell"])
    assert rea["planted_codes"] == "".join(str(c) for c in edges)  # the edge codes, NB201's order
    rand = planted_run("random", seed=0, epochs=15)
    assert rand["rewards"] == 300 and not rand["found"] and rand["first_hit"] is None


def test_main_prints_a_row_per_seed_and_a_count_per_strategy(capsys):
    assert main(["--strategies", "rea,random", "--seeds", "2", "--epochs", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["strategy", "seed", "rewards", "found", "final", "1st", "hit", "samples", "s",
                              "cell", "planted"]
    assert [line.split()[:3] for line in out[1:3]] == [["rea", "0", "40"], ["rea", "1", "40"]]
    assert out[3].startswith("rea: the planted cell found by ") and out[-1].endswith(" of 2 seeds")


@pytest.mark.parametrize("args, says", [
    (["--strategies", "ednas,foo"], "--strategies: unknown strategy 'foo'; known: ednas, random, enas, evnas, nao, rea"),
    (["--strategies", ""], "--strategies: no strategy given; known: "),
    (["--seeds", "0"], "argument --seeds: 0 is below 1"),
    (["--epochs", "x"], "argument --epochs: 'x' is not a number")])
def test_bad_arguments_stop_with_one_line_before_any_search(args, says, capsys):
    with pytest.raises(SystemExit) as stop:
        main(args)
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert says in err[-1] and "Traceback" not in "\n".join(err)


def test_set_changes_one_strategy_setting_checked_as_params_yaml_is():
    config = with_settings(nb201_search_defaults(), ["enas.lr=0.02", "nao.epochs=5", "enas.train_steps=3"])
    assert (config.enas.lr, config.enas.train_steps, config.nao.epochs) == (0.02, 3, 5)
    assert config.evnas == nb201_search_defaults().evnas
    for bad, says in [("enas.lr=-1", "nb201.search.enas.lr: got -1; expected a number > 0"),
                      ("enas.foo=1", "nb201.search.enas.foo: unknown key"),
                      ("lr=3", "expected STRATEGY.KEY=VALUE"), ("enas.lr", "expected STRATEGY.KEY=VALUE"),
                      ("enas.lr=[", "'enas.lr=\\[': ")]:
        with pytest.raises(SystemExit, match=says):
            main(["--strategies", "enas", "--seeds", "1", "--epochs", "1", "--set", bad])


@pytest.mark.parametrize("space, length", [("cnn", 32), ("rnn", 16)])
def test_the_cnn_and_rnn_spaces_with_their_tasks_settings(space, length, capsys):
    """EDNAS with the task's settings (CIFAR-10's search section, PTB's) on a planted cell of that space; the
    cells print as their tokens (an input and an op index per edge)."""
    r = planted_run("ednas", seed=0, epochs=2, space=space)
    assert r["rewards"] > 0 and 0 < r["final_reward"] <= 1 and len(r["planted_codes"]) == length
    assert main(["--space", space, "--strategies", "random", "--seeds", "1", "--epochs", "1"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "random: the planted cell found by 0 of 1 seeds"


def test_set_names_the_section_of_the_space():
    config = with_settings(RNNSearchConfig(), ["enas.lr=0.01"], "ptb.search")
    assert config.enas.lr == 0.01 and config.nao == RNNSearchConfig().nao
    with pytest.raises(SystemExit, match="ptb.search.enas.lr: got 0"):
        main(["--space", "rnn", "--strategies", "enas", "--seeds", "1", "--epochs", "1", "--set", "enas.lr=0"])
