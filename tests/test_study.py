"""The NAS-Bench-201 tabular study (ednas_core/study.py, tools/nb201_study.py): the CLI writes study.csv (every row
a real look-up), study.md (summary, the paper's rows, the query budget caveat, Mann-Whitney against random) and
study.png; REA and EDNAS with the nb201 settings average far above the space's mean over 30 seeds; one-line
errors for a bad strategy name or a missing table. Tests on the real table need EDNAS_DATA_ROOT."""

import csv
import math

import numpy as np
import pytest

import tools.nb201_study as cli
from ednas_core.data.nb201_table import NB201Table
from ednas_core.study import curves, mann_whitney, run_seeds, summarize
from ednas_core.tabular import TabularResult
from helpers import NB201_TABLES, nb201_search_config, needs_nb201_table

needs_table = needs_nb201_table
search_config = nb201_search_config


@pytest.fixture(scope="module")
def real() -> NB201Table:
    return NB201Table.load(NB201_TABLES)


def _result(strategy, seed, acc, curve=None, queries=3):
    return TabularResult(strategy=strategy, seed=seed, queries=queries, best_arch="a", best_valid_acc=80.0,
                         best_test_acc=acc, best_rank=int(100 - acc), final_arch="b", final_test_acc=acc - 1,
                         final_rank=7, curve=tuple(curve or [acc] * queries))


# --- the statistics ---------------------------------------------------------------------------------------------


def test_mann_whitney_two_sided():
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == (0.0, pytest.approx(0.1))  # exact: 2 of the 20 orderings
    u, p = mann_whitney(list(range(30)), list(range(30)))
    assert u == 450 and p == pytest.approx(1.0)
    assert mann_whitney(list(range(30, 60)), list(range(30)))[1] < 1e-9


def test_summary_per_strategy():
    results = [_result("random", s, a) for s, a in enumerate([93.0, 93.5, 94.0])]
    results += [_result("rea", s, a) for s, a in enumerate([94.0, 94.2, 94.4])]
    random, rea = summarize(results, {"rea": 2.0})
    assert (random.strategy, random.n, random.mean, random.min, random.max) == ("random", 3, 93.5, 93.0, 94.0)
    assert random.std == pytest.approx(np.std([93.0, 93.5, 94.0])) and math.isnan(random.p)
    assert rea.mean == pytest.approx(94.2) and rea.final_mean == pytest.approx(93.2) and rea.seconds == 2.0
    assert rea.mean_rank == pytest.approx(np.mean([int(100 - a) for a in (94.0, 94.2, 94.4)]))
    assert (rea.u, rea.p) == mann_whitney([94.0, 94.2, 94.4], [93.0, 93.5, 94.0])


def test_curves_of_shorter_runs_keep_their_last_value():
    results = [_result("rea", 0, 94.0, [90.0, 94.0], queries=2), _result("rea", 1, 93.0, [91.0, 92.0, 93.0])]
    assert curves(results, "rea").tolist() == [[90.0, 94.0, 94.0], [91.0, 92.0, 93.0]]


# --- the CLI ----------------------------------------------------------------------------------------------------


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert cli.main(["--table", str(tmp_path), "--seeds", "2", "--strategies", "rea,bogus", "--out",
                     str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown strategy 'bogus'" in err and "rea" in err
    assert cli.main(["--table", str(tmp_path), "--seeds", "2", "--strategies", "rea", "--out",
                     str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "nats_bench.csv" in err and "nb201_12epoch_accs.csv" in err
    assert cli.main(["--table", str(tmp_path), "--seeds", "0", "--out", str(tmp_path / "o")]) == 2
    assert "--seeds: got 0" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@needs_table
def test_study_writes_csv_md_png_with_real_look_ups(tmp_path, capsys):
    folder = NB201_TABLES
    out = tmp_path / "study"
    assert cli.main(["--table", str(folder), "--seeds", "3", "--strategies", "rea,random", "--out", str(out),
                     "--budget", "40"]) == 0
    printed = capsys.readouterr().out
    assert "| rea | 3 |" in printed and "| random | 3 |" in printed
    with open(folder / "nats_bench.csv", newline="") as f:
        test_of = {r["ArchitectureString"]: float(r["CIFAR10TestAccuracy200Epochs"]) for r in csv.DictReader(f)}
    with open(folder / "nb201_12epoch_accs.csv", newline="") as f:
        valid_of = {r["cellstr"]: float(r["cifar10-val"]) for r in csv.DictReader(f)}
    with open(out / "study.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["strategy"], r["seed"]) for r in rows] == [(s, str(k)) for s in ("rea", "random") for k in range(3)]
    for row in rows:
        assert float(row["best_test_acc"]) == test_of[row["best_arch"]]
        assert float(row["best_valid_acc"]) == valid_of[row["best_arch"]]
        assert float(row["final_test_acc"]) == test_of[row["final_arch"]]
        assert int(row["queries"]) == 40 and 1 <= int(row["best_rank"]) <= 15_625
    md = (out / "study.md").read_text()
    for text in ("Budget: 40 queries", "12,000 s", "cannot be reproduced exactly", "| REA | 93.92 ± 0.30 |",
                 "| REINFORCE | 93.85 ± 0.37 |", "| random search | 93.70 ± 0.36 |", "optimum 94.37", "mean 87.06",
                 "Mann-Whitney", "study.png"):
        assert text in md, text
    assert (out / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and (out / "study.png").stat().st_size > 10_000


@needs_table
@pytest.mark.slow
def test_rea_and_ednas_average_far_above_the_space_over_30_seeds(real):
    """nb201.search's settings, 150 queries. Measured (seeds 0-29): REA 94.13 +- 0.30, EDNAS 93.80 +- 0.30
    (policy_lr 0.01, baseline_decay 0.9), random 93.75 +- 0.35; the space's mean is 87.06. EDNAS's policy starts
    uniform over cells: started uniform over each node's input subsets instead (favouring sparse cells) it
    falls to 93.44 +- 0.52, below random search."""
    config = search_config()
    seeds = range(30)
    acc = {name: np.array([r.best_test_acc for r in run_seeds(real, config, name, seeds)])
           for name in ("rea", "ednas", "random")}
    assert acc["rea"].mean() > real.mean() + 6.5 and acc["ednas"].mean() > real.mean() + 5.5
    assert acc["rea"].mean() > acc["random"].mean() and mann_whitney(acc["rea"], acc["random"])[1] < 0.01
    assert acc["ednas"].mean() > 93.6  # seeded, the same numbers every run; a sparse-favouring start gives 93.44
