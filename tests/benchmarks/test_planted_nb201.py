"""The planted-cell benchmark of the NAS-Bench-201 space (benchmarks/planted_nb201.py): one search per strategy and
seed through the real loop; REA finds the planted cell within its 300 rewards, random search does not."""

from __future__ import annotations

import pytest

from benchmarks.planted_nb201 import main, planted_run, with_settings
from ednas_core.config import nb201_search_defaults


def test_rea_finds_the_planted_cell_and_random_search_does_not():
    rea = planted_run("rea", seed=0, epochs=15)
    assert rea["rewards"] == 300 and rea["found"] and rea["final_reward"] == 1.0
    assert 1 <= rea["first_hit"] <= 300
    assert rea["final_codes"] == rea["planted_codes"] and len(rea["planted_codes"]) == 6
    rand = planted_run("random", seed=0, epochs=15)
    assert rand["rewards"] == 300 and not rand["found"] and rand["first_hit"] is None


def test_main_prints_a_row_per_seed_and_a_count_per_strategy(capsys):
    assert main(["--strategies", "rea,random", "--seeds", "2", "--epochs", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["strategy", "seed", "rewards", "found", "final", "1st", "hit", "samples", "cell",
                              "planted", "s"]
    assert [line.split()[:3] for line in out[1:3]] == [["rea", "0", "40"], ["rea", "1", "40"]]
    assert out[3].startswith("rea: the planted cell found by ") and out[-1].endswith(" of 2 seeds")


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
