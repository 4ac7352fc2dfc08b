"""NAS-Bench-201 through the real pipeline: `dvc repro` of all five stages on the benchmark's table (task nb201,
tabular mode), the found cell looked up in the table, and an ablation with another strategy by `dvc exp run`.
Needs the real tables (EDNAS_DATA_ROOT/nb201); skipped without them."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest

from pipeline import dvc, mlflow_runs, stage
from tools.workspace import make_workspace

pytestmark = pytest.mark.slow

TABLES = Path(os.environ.get("EDNAS_DATA_ROOT", "/nonexistent")) / "nb201"
needs_tables = pytest.mark.skipif(not (TABLES / "nats_bench.csv").is_file(),
                                  reason="EDNAS_DATA_ROOT/nb201 is absent (set EDNAS_DATA_ROOT to the real tables)")
NB201 = {"task": "nb201", "runtime.device": "cpu", "nb201.search.budget": 20, "nb201.derive.samples": 50}


def _table_rows() -> dict[str, dict[str, str]]:
    with open(TABLES / "nats_bench.csv", newline="") as f:
        return {row["ArchitectureString"]: row for row in csv.DictReader(f)}


@needs_tables
def test_tabular_pipeline_reports_true_accuracies(tmp_path):
    ws = make_workspace(tmp_path / "repo", NB201)
    shutil.copytree(TABLES, ws / "data/raw/nb201")
    dvc(ws, "repro")
    genotype = json.loads((ws / "data/derive/genotype.json").read_text())
    assert genotype["space"] == "nb201" and len(genotype["cell"]) == 6
    evaluate = json.loads((ws / "metrics/evaluate.json").read_text())
    info = json.loads((ws / "metrics/info/evaluate.json").read_text())
    row = _table_rows()[info["arch_string"]]
    assert info["arch_string"] == genotype["arch_string"]
    assert evaluate["cifar10_test_acc"] == pytest.approx(float(row["CIFAR10TestAccuracy200Epochs"]))
    assert evaluate["cifar100_test_acc"] == pytest.approx(float(row["CIFAR100TestAccuracy200Epochs"]))
    # derive.mode queried: the best look-up of the search itself, nothing beyond its budget (derive looks up 50
    # samples more, which would find a better cell than 20 look-ups did)
    search = json.loads((ws / "metrics/search.json").read_text())
    assert search["queries"] == 20
    assert search["best_test_acc"] == pytest.approx(evaluate["cifar10_test_acc"])
    assert 1 <= evaluate["rank"] <= 15625
    report = (ws / "metrics/report.md").read_text()
    assert info["arch_string"] in report and "93.92 +- 0.30" in report and f"rank {evaluate['rank']} of 15625" in report
    assert (ws / "metrics/figures/nb201_curves.png").is_file()
    # the strategy's own answer (EDNAS: the policy's most probable cell, derive's argmax_genotype.json) judged by
    # the table at every epoch; the last one in metrics/search.json and the report
    argmax = _table_rows()[json.loads((ws / "data/derive/argmax_genotype.json").read_text())["arch_string"]]
    assert search["answer_test_acc"] == pytest.approx(float(argmax["CIFAR10TestAccuracy200Epochs"]))
    with open(ws / "metrics/search_epochs.csv", newline="") as f:
        epochs = list(csv.DictReader(f))
    assert len(epochs) == 2 and all(60 < float(e["answer_test_acc"]) < 95 for e in epochs)
    assert float(epochs[-1]["answer_rank"]) == search["answer_rank"]
    assert (f"- the strategy's own answer at the end of the search (the policy's most probable cell) tests at "
            f"{search['answer_test_acc']:.2f}, rank {search['answer_rank']:.0f} of 15625") in report
    runs = {r.data.tags["dvc.stage"]: r for r in mlflow_runs(ws, task="nb201")}
    assert {"prepare-data", "search", "derive", "evaluate", "report"} <= set(runs)
    assert runs["search"].data.metrics["best_test_acc"] == pytest.approx(search["best_test_acc"])
    assert "up to date" in dvc(ws, "status").stdout
    # an ablation: another strategy on the same table; prepare-data is not rerun
    done = dvc(ws, "exp", "run", "-S", "nb201.search.strategy=rea")
    assert "Running stage 'prepare-data'" not in done.stdout and "Running stage 'search'" in done.stdout
    rea = json.loads((ws / "metrics/evaluate.json").read_text())
    assert 1 <= rea["rank"] <= 15625
    # the study's curves against the truth, from both searches' MLflow histories: in the report and as an artifact
    report = (ws / "metrics/report.md").read_text()
    assert (ws / "metrics/figures/study_curves.png").is_file() and "](figures/study_curves.png)" in report
    from mlflow.tracking import MlflowClient

    last = max((r for r in mlflow_runs(ws, task="nb201") if r.data.tags["dvc.stage"] == "report"),
               key=lambda r: r.info.start_time)
    client = MlflowClient(tracking_uri=f"sqlite:///{ws / 'mlflow.db'}")
    assert "figures/study_curves.png" in {f.path for f in client.list_artifacts(last.info.run_id, "figures")}


CIFAR = TABLES.parent / "cifar-10-batches-bin"


@needs_tables
@pytest.mark.skipif(not CIFAR.is_dir(), reason="EDNAS_DATA_ROOT/cifar-10-batches-bin is absent")
def test_a_tabular_search_whose_cell_is_trained_here(tmp_path):
    """nb201.evaluate.train: the search looks cells up, the evaluation trains the found one on the real CIFAR-10
    (one epoch of a tiny skeleton) and reports it beside the table's number."""
    ws = make_workspace(tmp_path / "repo", {**NB201, "nb201.evaluate.train": True, "nb201.evaluate.epochs": 1,
                                            "nb201.evaluate.init_channels": 4, "nb201.evaluate.layers": 1,
                                            "nb201.evaluate.batch_size": 512})
    shutil.copytree(TABLES, ws / "data/raw/nb201")
    shutil.copytree(CIFAR, ws / "data/raw/cifar-10-batches-bin")
    dvc(ws, "repro")
    evaluate = json.loads((ws / "metrics/evaluate.json").read_text())
    info = json.loads((ws / "metrics/info/evaluate.json").read_text())
    assert 0.0 < evaluate["test_error"] < 90.0 and evaluate["params"] > 0  # trained: better than chance
    assert evaluate["table_test_acc"] == pytest.approx(float(_table_rows()[info["arch_string"]]
                                                             ["CIFAR10TestAccuracy200Epochs"]))


@needs_tables
def test_prepare_data_reads_nats_benchs_own_archive_as_downloaded(tmp_path):
    """The published tables written as NATS-Bench's NATS-tss-v1_0-3ffb9-simple.tar: prepare-data reads the tar
    itself (no extraction, no nats_bench) and prepares exactly the table the CSV files give."""
    from ednas_core.data.nats_archive import ARCHIVE_DIR, ARCHIVE_TAR
    from ednas_core.data.nb201_table import NB201Table
    from nats_files import table_records, write_archive, write_tar

    real = NB201Table.load(TABLES)
    strings = list(real.arch_strings)
    archive = write_archive(tmp_path / "build" / ARCHIVE_DIR, strings, table_records(strings, real.valid_12,
                                                                                      real.tests))
    ws = make_workspace(tmp_path / "repo", NB201)
    (ws / "data/raw/nb201").mkdir(parents=True)
    write_tar(archive, ws / "data/raw/nb201" / ARCHIVE_TAR)
    done = stage(ws, "prepare_data")
    assert done.returncode == 0, done.stderr
    assert (ws / "data/prepared/nb201.csv").read_text() == real.to_csv()
    manifest = json.loads((ws / "data/prepared/manifest.json").read_text())
    [source] = manifest["sources"]
    assert source.startswith(f"nb201/{ARCHIVE_TAR}") and len(manifest["sources"][source]) == 32
    assert sorted(p.name for p in (ws / "data/raw/nb201").iterdir()) == [ARCHIVE_TAR]  # nothing extracted


def test_missing_table_is_one_line_naming_the_files(tmp_path):
    ws = make_workspace(tmp_path / "repo", NB201)
    done = stage(ws, "prepare_data")
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if "error" in line.lower()]
    assert len(lines) == 1 and "nb201" in lines[0] and "nats_bench.csv" in lines[0], done.stderr
    assert not (ws / "data/prepared/manifest.json").exists()
