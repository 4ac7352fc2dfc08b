"""tools/study.py against a real SQLite MLflow store made here with MlflowClient: the study files and the printed
table; a store without ednas runs, a missing database and a server that does not answer are one-line errors."""

from __future__ import annotations

import csv
import socket
import time
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient

from tools import study as study_cli

# (pipeline, strategy, seed, test error or None: evaluate failed)
PIPELINES = [("e1", "ednas", 1, 3.0), ("e2", "ednas", 2, 3.4), ("r1", "random", 1, 4.0), ("r2", "random", 2, 4.2),
             ("e3", "ednas", 3, None)]


def log_run(client: MlflowClient, experiment: str, pid: str, stage: str, params: dict, metrics: dict,
            status: str = "FINISHED", error: str = "", task: str = "cifar10",
            history: dict[str, list[float]] | None = None) -> None:
    """One stage run; `history`: per-epoch values of metrics, logged at steps 1, 2, ..."""
    strategy_key = "search.strategy" if task == "cifar10" else f"{task}.search.strategy"
    tags = {"ednas.pipeline_id": pid, "ednas.stage": stage, "ednas.task": task,
            "ednas.strategy": params[strategy_key], "dvc.exp_name": f"exp-{pid}", "git.rev": "0123456789abcdef"}
    if error:
        tags["error"] = error
    run = client.create_run(experiment, tags=tags)
    now = int(time.time() * 1000)
    steps = [Metric(k, v, now, step) for k, values in (history or {}).items() for step, v in enumerate(values, 1)]
    client.log_batch(run.info.run_id, metrics=[Metric(k, v, now, 0) for k, v in metrics.items()] + steps,
                     params=[Param(k, v) for k, v in params.items()], tags=[RunTag("mlflow.runName", stage)])
    client.set_terminated(run.info.run_id, status)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("ednas-cifar10", artifact_location=(root / "mlruns").as_uri())
    for pid, strategy, seed, error in PIPELINES:
        params = {"search.strategy": strategy, "search.lr": "0.05", "runtime.seed": str(seed)}
        log_run(client, experiment, pid, "pipeline", params, {"test_error": 99.0}, status="KILLED")  # the parent
        log_run(client, experiment, pid, "search", params, {"search_gpu_hours": 2.0})
        if error is None:
            log_run(client, experiment, pid, "evaluate", params, {}, status="FAILED",
                    error="FloatingPointError: loss is nan")
        else:
            log_run(client, experiment, pid, "evaluate", params, {"test_error": error, "params_m": 3.5})
    # nb201, tabular: two seeds of ednas and of random search, each search with its per-epoch truth
    nb201 = client.create_experiment("ednas-nb201", artifact_location=(root / "mlruns").as_uri())
    for pid, strategy, seed, error, answers in (("n1", "ednas", 1, 6.0, [90.0, 92.0]),
                                                ("n2", "ednas", 2, 6.2, [88.0, 94.0]),
                                                ("n3", "random", 1, 6.5, None), ("n4", "random", 2, 6.7, None)):
        params = {"nb201.search.strategy": strategy, "nb201.search.mode": "tabular", "runtime.seed": str(seed)}
        history = {"best_test_acc": [91.0 + seed, 93.0]} | ({"answer_test_acc": answers} if answers else {})
        log_run(client, nb201, pid, "search", params, {"search_cpu_hours": 0.01}, task="nb201", history=history)
        log_run(client, nb201, pid, "evaluate", params, {"test_error": error}, task="nb201")
    return uri


def test_study_of_a_real_store(store, tmp_path, capsys):
    out = tmp_path / "study"
    assert study_cli.main(["--tracking-uri", store, "--out", str(out), "--task", "cifar10"]) == 0
    printed = capsys.readouterr().out
    assert "| cifar10 | ednas | 2 | 1 2 | 1 | 0 | test error (%) | 3.2 ± 0.28 | 3 / 3.4 |" in printed
    assert "| cifar10 | random | 2 | 1 2 | 0 | 0 | test error (%) | 4.1 ± 0.14 | 4 / 4.2 |" in printed
    assert "study: 2 groups of 5 pipelines, 1 failed; wrote" in printed
    with open(out / "study.csv", newline="") as f:
        rows = {r["strategy"]: r for r in csv.DictReader(f)}
    assert float(rows["ednas"]["mean"]) == pytest.approx(3.2)  # 3.0 3.4: squared deviations .04 .04, var .08
    assert float(rows["ednas"]["std"]) == pytest.approx(0.08 ** 0.5)
    assert float(rows["random"]["std"]) == pytest.approx(0.02 ** 0.5)
    text = (out / "study.md").read_text()
    assert "| e3 | exp-e3 | 3 | evaluate | FloatingPointError: loss is nan |" in text and "](study.png)" in text
    assert (out / "study.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_nb201_study_draws_each_groups_curves_from_the_search_runs_histories(store, tmp_path, capsys):
    out = tmp_path / "study"
    assert study_cli.main(["--tracking-uri", store, "--out", str(out), "--task", "nb201"]) == 0
    printed = capsys.readouterr().out
    assert "| nb201 | ednas | 2 | 1 2 | 0 | 0 | test error (%) | 6.1 ± 0.14 | 6 / 6.2 | -0.5 (p 0.33, 2 vs 2) |" in printed
    assert printed.rstrip().endswith("study.csv, study.png, study_curves.png")
    # nb201's own headline numbers: the answer at the last epoch (92 and 94), no ranking in tabular mode
    assert "| answer's test acc (%) | ranking (Kendall tau) |" in printed
    [ednas_row] = [line for line in printed.splitlines() if line.startswith("| nb201 | ednas |")]
    assert ednas_row.endswith("| 93 ± 1.4 | - | NB201 REINFORCE (tabular): 6.15 ± 0.37 |")
    with open(out / "study.csv", newline="") as f:
        rows = {r["strategy"]: r for r in csv.DictReader(f)}
    assert float(rows["ednas"]["search_answer_test_acc_mean"]) == 93.0
    assert rows["random"]["search_answer_test_acc_mean"] == rows["ednas"]["search_rank_kendall_tau_mean"] == ""
    png = (out / "study_curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and "](study_curves.png)" in (out / "study.md").read_text()


def test_curves_that_cannot_be_read_leave_the_study_without_them(store, tmp_path, monkeypatch, capsys):
    def refuse(self, run_id, key):
        raise RuntimeError("database is gone\nsecond line")

    monkeypatch.setattr(MlflowClient, "get_metric_history", refuse)
    out = tmp_path / "study"
    assert study_cli.main(["--tracking-uri", store, "--out", str(out), "--task", "nb201"]) == 0
    err = capsys.readouterr().err
    assert err == ("study: warning: cannot read the search runs' metric histories (database is gone); "
                   "study_curves.png is not drawn\n")
    assert (out / "study.md").is_file() and not (out / "study_curves.png").exists()


def test_default_store_is_the_stages(store, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.chdir(tmp_path)
    assert study_cli.main([]) == 0
    assert (tmp_path / "metrics/study/study.csv").is_file() and "| cifar10 | ednas |" in capsys.readouterr().out


def error_of(argv: list[str], capsys) -> str:
    capsys.readouterr()  # what making the store printed
    assert study_cli.main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("study: ")
    return err


def test_a_store_without_ednas_runs_is_an_error(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    MlflowClient(tracking_uri=uri).create_experiment("something-else")
    assert "no ednas pipelines in the tracking store" in error_of(["--tracking-uri", uri, "--out", str(tmp_path)],
                                                                  capsys)
    assert not (tmp_path / "study.md").exists()


def test_a_task_without_pipelines_is_an_error(store, tmp_path, capsys):
    assert "no ptb pipelines" in error_of(["--tracking-uri", store, "--task", "ptb", "--out", str(tmp_path)], capsys)


def test_a_missing_database_is_an_error_and_not_created(tmp_path, capsys):
    db = tmp_path / "nowhere" / "mlflow.db"
    assert f"no tracking database at {db}" in error_of(["--tracking-uri", f"sqlite:///{db}"], capsys)
    assert not db.exists()


def test_a_server_that_does_not_answer_is_an_error(tmp_path, capsys):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    started = time.monotonic()
    err = error_of(["--tracking-uri", f"http://127.0.0.1:{port}", "--out", str(tmp_path)], capsys)
    assert f"no MLflow server answers at http://127.0.0.1:{port}" in err and time.monotonic() - started < 10
