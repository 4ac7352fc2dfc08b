"""Regression for derive.mode queried (nb201, tabular; NB201's protocol): derive once drew derive.samples more
candidates from the strategy and looked each up beyond the search's budget, so metrics/derive.json's best_reward,
candidates.csv's rank 1 and best_genotype.json were the best of those samples, not the cell chosen
(genotype.json, the best-validation cell among the search's own look-ups), and the look-ups joined the child's
query record. Now the candidates are the search's own distinct look-ups: best == chosen, nothing looked up more.

Runs the real prepare-data, search and derive stages (main()) in a temporary workspace on a made-up table of all
15,625 cells whose validation and test orders differ; MLflow is replaced by a no-op run."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from ednas_core.checkpoint import load_checkpoint
from ednas_core.data.nb201_table import N_ARCHITECTURES, NB201Table, all_arch_strings
from ednas_core.genotypes import Genotype, load_genotype, to_architecture
from ednas_core.tasks.nb201 import NB201Task
from helpers import stages_without_tracking
from stages import derive as derive_stage
from stages import prepare_data as prepare_stage
from stages import search as search_stage
from tools.workspace import PROJECT, set_params

BUDGET = 20


def made_up_table() -> NB201Table:
    i = np.arange(N_ARCHITECTURES)
    return NB201Table(all_arch_strings(), 40.0 + (i * 13 % 449) / 10.0, {"cifar10": 60.0 + (i * 7 % 331) / 10.0})


@pytest.fixture(scope="module", params=["ednas", "rea"])
def derived(request, tmp_path_factory) -> dict:
    strategy = request.param
    root = tmp_path_factory.mktemp(f"derive-queried-{strategy}")
    shutil.copy(PROJECT / "params.yaml", root / "params.yaml")
    set_params(root / "params.yaml", {"task": "nb201", "runtime.device": "cpu", "runtime.seed": 3,
                                      "tracking.progress": "off", "nb201.search.strategy": strategy,
                                      "nb201.search.budget": BUDGET, "nb201.derive.samples": 100,
                                      "nb201.derive.mode": "queried"})
    table = made_up_table()
    (root / "data" / "raw" / "nb201").mkdir(parents=True)
    (root / "data" / "raw" / "nb201" / "nb201.csv").write_text(table.to_csv())
    restored: dict = {}
    original = NB201Task.restore_search

    def recording(*args, **kwargs):
        restored["child"], restored["strategy"] = out = original(*args, **kwargs)
        return out

    with pytest.MonkeyPatch.context() as mp:
        stages_without_tracking(mp, root)
        mp.setattr(NB201Task, "restore_search", recording)
        prepare_stage.main()
        search_stage.main()
        derive_stage.main()
    state = load_checkpoint(root / "data" / "search" / "supernet.safetensors", "rerun")
    derive = root / "data" / "derive"
    with open(derive / "candidates.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    return {"table": table, "searched": [int(i) for i in state["child"]["queried"]], "child": restored["child"],
            "strategy": restored["strategy"], "rows": rows,
            "genotype": load_genotype(derive / "genotype.json"), "best": load_genotype(derive / "best_genotype.json"),
            "argmax": load_genotype(derive / "argmax_genotype.json"),
            "headline": json.loads((root / "metrics" / "derive.json").read_text()),
            "info": json.loads((root / "metrics" / "info" / "derive.json").read_text()),
            "search": json.loads((root / "metrics" / "search.json").read_text())}


def index(table: NB201Table, genotype: Genotype) -> int:
    return table.index(to_architecture(genotype))


def test_best_reward_is_the_chosen_cells_and_the_searchs_best(derived):
    table, searched, headline, info = derived["table"], derived["searched"], derived["headline"], derived["info"]
    assert len(searched) == BUDGET
    best_valid = max(table.valid_12[i] for i in searched)
    assert headline["best_reward"] == info["chosen_reward"] == best_valid / 100.0
    assert derived["search"]["best_valid_acc"] == pytest.approx(best_valid)
    first_best = next(i for i in searched if table.valid_12[i] == best_valid)  # NB201's answer: the first of equals
    assert index(table, derived["genotype"]) == first_best
    assert info["mode"] == "queried"


def test_candidates_are_the_searchs_own_look_ups_ranked_with_the_chosen_first(derived):
    table, searched, rows = derived["table"], derived["searched"], derived["rows"]
    distinct = list(dict.fromkeys(searched))
    assert sorted(index(table, Genotype.from_dict(json.loads(r["genotype"]))) for r in rows) == sorted(distinct)
    assert derived["info"]["samples"] == derived["info"]["distinct_samples"] == len(distinct) == len(rows)
    for row in rows:
        assert float(row["reward"]) == pytest.approx(
            table.valid_12[index(table, Genotype.from_dict(json.loads(row["genotype"])))] / 100.0, abs=1e-6)
    top = Genotype.from_dict(json.loads(rows[0]["genotype"]))
    assert top == derived["genotype"] == derived["best"], "candidates.csv rank 1 / best_genotype.json differ " \
                                                           "from genotype.json"
    final = derived["strategy"].final_architecture()
    assert index(table, derived["argmax"]) == table.index(final)
    assert derived["info"]["argmax_reward"] == table.valid_acc(final) / 100.0


def test_derive_makes_no_look_up_beyond_the_budget(derived):
    assert derived["child"].queried == derived["searched"], "derive extended the search's query record"
