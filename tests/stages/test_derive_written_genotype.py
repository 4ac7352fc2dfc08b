"""Regression for the authors' genotype() that did not match the architecture it stood for: the derive stage
(stages/derive.py main(), after real prepare-data and search stages in a temporary workspace) must write the
genotype it scored. Checked through what the stages write (data/derive/*.json, candidates.csv,
metrics/derive.json) and by scoring the written genotypes again with the stage's own scorer
(the task's derive_scorer on the child network derive restored), never through the search's state files.

MLflow is replaced by a no-op run (tests/test_tracking.py covers it) to keep the test fast."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from ednas_core.genotypes import Genotype, load_genotype, to_architecture
from ednas_core.tasks import get_task
from helpers import stages_without_tracking
from stages import derive as derive_stage
from stages import prepare_data as prepare_stage
from stages import search as search_stage
from tools.workspace import PROJECT, set_params

SAMPLES = 12
TASKS = {
    "digits": {"task": "digits", "digits.search.epochs": 2, "digits.search.layers": 3,
               "digits.search.init_channels": 4, "digits.derive.samples": SAMPLES, "digits.derive.batch_size": 128},
    "markov": {"task": "markov", "markov.search.epochs": 1, "markov.search.emb": 16, "markov.search.hidden": 16,
               "markov.derive.samples": SAMPLES, "markov.derive.batch_size": 16},
}
COMMON = {"runtime.device": "cpu", "runtime.seed": 3, "tracking.progress": "off"}


def run_derive(root: Path, mode: str, task: str) -> dict:
    """derive's main() with derive.mode = `mode`; returns what the task's derive_scorer was called with."""
    set_params(root / "params.yaml", {f"{task}.derive.mode": mode})
    seen: dict = {}
    task_class = type(get_task(task))
    original = task_class.derive_scorer

    def recording(self, child, batch_size, runtime):
        seen.update(task=self.name, child=child, runtime=runtime)
        return original(self, child, batch_size, runtime)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(task_class, "derive_scorer", recording)
        derive_stage.main()
    assert seen, "the derive stage never built its scorer"
    return {**seen, "outputs": read_outputs(root)}


def read_outputs(root: Path) -> dict:
    derive = root / "data" / "derive"
    with open(derive / "candidates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"genotype": load_genotype(derive / "genotype.json"),
            "best": load_genotype(derive / "best_genotype.json"),
            "argmax": load_genotype(derive / "argmax_genotype.json"),
            "rows": rows,
            "headline": json.loads((root / "metrics" / "derive.json").read_text()),
            # what the report reads: the headline numbers and the rest (metrics/info/derive.json), merged
            "metrics": {**json.loads((root / "metrics" / "derive.json").read_text()),
                        **json.loads((root / "metrics" / "info" / "derive.json").read_text())}}


@pytest.fixture(scope="module", params=sorted(TASKS))
def derived(request, tmp_path_factory) -> dict:
    """prepare-data, search, then derive (mode best, then argmax) in a temporary workspace."""
    task = request.param
    root = tmp_path_factory.mktemp(f"derive-{task}")
    shutil.copy(PROJECT / "params.yaml", root / "params.yaml")
    set_params(root / "params.yaml", {**COMMON, **TASKS[task]})
    with pytest.MonkeyPatch.context() as mp:
        stages_without_tracking(mp, root)
        prepare_stage.main()
        search_stage.main()
        best = run_derive(root, "best", task)
        argmax = run_derive(root, "argmax", task)
    return {"task": task, "best": best, "argmax": argmax}


def rescore(run: dict, genotype: Genotype) -> float:
    """The reward of `genotype` by the scorer derive uses, built again on the child derive restored."""
    batch_size = TASKS[run["task"]][f"{run['task']}.derive.batch_size"]
    score, _ = get_task(run["task"]).derive_scorer(run["child"], batch_size, run["runtime"])
    return float(score(to_architecture(genotype)))


def row_genotype(row: dict) -> Genotype:
    return Genotype.from_dict(json.loads(row["genotype"]))


def test_candidates_are_ranked_by_reward_and_each_reward_is_its_genotypes(derived):
    run = derived["best"]
    rows, metrics = run["outputs"]["rows"], run["outputs"]["metrics"]
    assert len(rows) == SAMPLES == metrics["samples"]
    assert [int(r["rank"]) for r in rows] == list(range(1, SAMPLES + 1))
    rewards = [float(r["reward"]) for r in rows]
    assert rewards == sorted(rewards, reverse=True), f"candidates.csv is not sorted by reward: {rewards}"
    assert len(set(rewards)) >= 3, f"too few distinct rewards to tell candidates apart: {rewards}"
    rescored = [rescore(run, row_genotype(r)) for r in rows]
    for k, (written, again) in enumerate(zip(rewards, rescored)):
        assert written == pytest.approx(again, abs=1e-6), \
            f"candidates.csv row {k + 1}: reward {written} but its genotype scores {again}; all rows: " \
            f"written {rewards}, rescored {[round(x, 6) for x in rescored]}"
    assert metrics["mean_reward"] == pytest.approx(sum(rescored) / SAMPLES, abs=1e-6)


def test_best_mode_writes_the_highest_scored_candidate(derived):
    run = derived["best"]
    out = run["outputs"]
    rows, metrics = out["rows"], out["metrics"]
    top = max(float(r["reward"]) for r in rows)
    first_best = next(r for r in rows if float(r["reward"]) == top)  # ties: the ranking's order decides
    assert out["best"] == row_genotype(first_best), "best_genotype.json is not the highest-reward candidate"
    assert out["genotype"] == out["best"], "derive.mode best: genotype.json is not best_genotype.json"
    assert out["argmax"] != out["best"], "precondition: the argmax genotype differs from the best candidate"
    written_reward = rescore(run, out["genotype"])
    assert written_reward == pytest.approx(top, abs=1e-6), \
        f"genotype.json scores {written_reward}, the best candidate in candidates.csv {top}"
    assert metrics["mode"] == "best"
    assert out["headline"] == {"best_reward": metrics["best_reward"]}  # the rest is in metrics/info/derive.json
    assert metrics["best_reward"] == pytest.approx(written_reward, abs=1e-9)
    assert metrics["chosen_reward"] == pytest.approx(written_reward, abs=1e-9)
    assert metrics["argmax_reward"] == pytest.approx(rescore(run, out["argmax"]), abs=1e-9)


def test_argmax_mode_writes_the_argmax_and_still_reports_the_best(derived):
    best, run = derived["best"]["outputs"], derived["argmax"]
    out = run["outputs"]
    assert out["rows"] == best["rows"], "derive is not repeatable: another mode scored other candidates"
    assert out["best"] == best["best"]
    assert out["genotype"] == out["argmax"], "derive.mode argmax: genotype.json is not argmax_genotype.json"
    assert out["metrics"]["mode"] == "argmax"
    assert out["metrics"]["chosen_reward"] == pytest.approx(rescore(run, out["argmax"]), abs=1e-9)
    assert out["metrics"]["best_reward"] == best["metrics"]["best_reward"]
