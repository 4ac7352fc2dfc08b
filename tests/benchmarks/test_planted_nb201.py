"""The planted-cell benchmark of the NAS-Bench-201 space (benchmarks/planted_nb201.py): one search per strategy and
seed through the real loop; REA finds the planted cell within its 300 rewards, random search does not."""

from __future__ import annotations

from benchmarks.planted_nb201 import main, planted_run


def test_rea_finds_the_planted_cell_and_random_search_does_not():
    rea = planted_run("rea", seed=0, epochs=15)
    assert rea["rewards"] == 300 and rea["found"] and rea["final_reward"] == 1.0
    assert 1 <= rea["first_hit"] <= 300
    rand = planted_run("random", seed=0, epochs=15)
    assert rand["rewards"] == 300 and not rand["found"] and rand["first_hit"] is None


def test_main_prints_a_row_per_seed_and_a_count_per_strategy(capsys):
    assert main(["--strategies", "rea,random", "--seeds", "2", "--epochs", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["strategy", "seed", "rewards", "found", "final", "1st", "hit", "samples", "s"]
    assert [line.split()[:3] for line in out[1:3]] == [["rea", "0", "40"], ["rea", "1", "40"]]
    assert out[3].startswith("rea: the planted cell found by ") and out[-1].endswith(" of 2 seeds")
