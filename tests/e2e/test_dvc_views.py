"""What a user sees when comparing the demo's runs with DVC: the baseline run committed by the demo's code (so
`dvc metrics diff` and `dvc exp show` read HEAD's metrics), two of README's demo ablations run as README says, and
`dvc exp show` with README's flags and `dvc metrics diff` rendered for a 120-column terminal; a change of another
task's key only fails in check-params and records nothing."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from pipeline import TINY
from tools.demo import ABLATIONS, EXP_SHOW, reproduce
from tools.workspace import PROJECT, dvc_env, make_workspace

pytestmark = pytest.mark.slow
WIDTH = 120
HEADLINE = ("child_acc", "entropy", "best_reward", "test_error", "params")
README = (PROJECT / "README.md").read_text()
# two of README's demo ablations, each changing another param: the widest `dvc exp show` of the demo's
RUN = (ABLATIONS["digits"][0], ABLATIONS["digits"][-1])


def run(ws: Path, command: str, check: bool = True) -> subprocess.CompletedProcess:
    """A shell command line as a user types it in the workspace (dvc from this interpreter's bin folder), in a
    terminal of WIDTH columns."""
    env = {**dvc_env(), "COLUMNS": str(WIDTH), "LINES": "50"}
    done = subprocess.run(command, shell=True, cwd=ws, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode:
        raise AssertionError(f"{command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    """A tiny digits workspace, reproduced and committed by the demo's own code, before any experiment."""
    ws = make_workspace(tmp_path_factory.mktemp("views") / "demo", TINY)
    code, committed = reproduce(ws, "digits", capture_output=True)
    assert code == 0 and committed
    return ws


@pytest.fixture(scope="module")
def ablated(demo) -> Path:
    for name, override, _ in RUN:
        run(demo, f"dvc exp run --temp -n {name} -S {override}")
    return demo


def lines_fit(text: str) -> list[str]:
    lines = text.splitlines()
    too_wide = [line for line in lines if len(line) > WIDTH]
    assert not too_wide, f"{len(too_wide)} lines wider than {WIDTH}:\n{text}"
    assert "…" not in text, f"collapsed columns:\n{text}"
    return lines


def test_readme_and_the_demo_give_the_same_commands():
    for name, override, _ in ABLATIONS["digits"]:
        assert f"dvc exp run --temp -n {name} -S {override}" in README
    assert README.count(EXP_SHOW) >= 2  # the demo paragraph and "Ablations and comparing runs"
    assert all(override.startswith(("digits.", "runtime.")) for _, override, _ in ABLATIONS["digits"])


def test_the_baseline_run_is_committed_with_nothing_left_over(demo):
    assert run(demo, "git status --porcelain").stdout == ""
    committed = set(run(demo, "git ls-files").stdout.split())
    assert {"dvc.lock", "metrics/search.json", "metrics/info/search.json", "data/.gitignore"} <= committed
    assert not {f for f in committed if f.startswith(("mlruns/", "dvc_plots/")) or f == "mlflow.db"}
    run(demo, "dvc plots show")  # writes dvc_plots/: ignored, so the next commit of the demo does not take it
    assert (demo / "dvc_plots").is_dir() and run(demo, "git status --porcelain").stdout == ""
    diff = run(demo, "dvc metrics diff")  # HEAD's metrics load: no error, and nothing differs yet
    assert diff.stdout.strip() == "" and diff.stderr.strip() == ""
    shown = json.loads(run(demo, "dvc exp show --json").stdout)
    main = next(row for row in shown if row.get("name") == "main")  # not `!`: the baseline has its numbers
    assert main["error"] is None and main["data"]["metrics"]["metrics/evaluate.json"]["data"]["test_error"] > 0


def test_a_second_run_of_the_demo_commits_nothing_stray(demo):
    (demo / "mlruns" / "stray").mkdir(parents=True, exist_ok=True)
    make_workspace(demo, TINY)
    code, committed = reproduce(demo, "digits", capture_output=True)
    assert (code, committed) == (0, False)
    assert run(demo, "git status --porcelain").stdout == ""


def test_metrics_files_are_numbers_and_the_rest_is_beside_them(demo):
    for stage in ("prepare", "search", "derive", "evaluate"):
        metrics = json.loads((demo / f"metrics/{stage}.json").read_text())
        assert metrics and all(type(v) in (int, float) for v in metrics.values()), (stage, metrics)
        info = json.loads((demo / f"metrics/info/{stage}.json").read_text())
        assert len(info["mlflow_run_id"]) == 32 and not set(info) & set(metrics), (stage, info)
    assert set(json.loads((demo / "metrics/search.json").read_text())) == {"child_acc", "entropy"}
    assert set(json.loads((demo / "metrics/evaluate.json").read_text())) == {"test_error", "params"}
    assert json.loads((demo / "metrics/info/evaluate.json").read_text())["genotype"] == "derived"


def test_dvc_metrics_show_fits(demo):
    lines = lines_fit(run(demo, "dvc metrics show").stdout)
    assert len(lines) == 5 and all(name in lines[0] for name in HEADLINE)


def test_only_the_tasks_params_are_stage_params(demo):
    # the workspace row (DVC 3.67 collects the baseline commit's row without --param-deps)
    shown = json.loads(run(demo, "dvc exp show --json --param-deps").stdout)
    keys = set(shown[0]["data"]["params"]["params.yaml"]["data"])
    assert keys == {"task", "runtime", "data", "digits"}, keys
    assert set(shown[0]["data"]["params"]["params.yaml"]["data"]["digits"]) == {"search", "derive", "evaluate"}


def test_exp_show_with_readmes_flags_fits_120_columns(ablated):
    text = run(ablated, f"{EXP_SHOW} --no-pager").stdout
    lines = lines_fit(text)
    header = next(line for line in lines if "Experiment" in line)
    for column in (*HEADLINE, "digits.search.lr", "runtime.seed"):
        assert re.search(rf"(^|\s){re.escape(column)}(\s|$)", header), (column, text)
    rows = {name: next((line for line in lines if f"[{name}]" in line), None) for name, _, _ in RUN}
    assert all(rows.values()), text
    assert re.search(r"\s0\.05\s", rows["lr-0.05"]) and re.search(r"\s3\s", rows["seed-3"])
    baseline = next(line for line in lines if re.match(r"\s*main\s", line))
    assert re.search(r"\s0\.1\s", baseline) and re.search(r"\s2\s", baseline)
    for row in (baseline, *rows.values()):  # a value in every headline column: 5 numbers before the params
        assert len(re.findall(r"\s-?\d+(\.\d+)?(?=\s)", row)) >= len(HEADLINE) + 2, row


def test_metrics_diff_of_an_experiment_fits(ablated):
    name = RUN[0][0]
    lines = lines_fit(run(ablated, f"dvc metrics diff main {name}").stdout)
    assert lines[0].split() == ["Path", "Metric", "main", name, "Change"]
    assert {line.split()[1] for line in lines[1:]} >= {"test_error", "child_acc", "best_reward"}


def test_another_tasks_key_fails_and_records_nothing(ablated):
    before = run(ablated, "dvc exp list --name-only").stdout.split()
    done = run(ablated, "dvc exp run --temp -n cifar-lr -S search.lr=0.3", check=False)
    assert done.returncode != 0
    assert ("check-params: error: search.lr belongs to task cifar10, but task is digits (which reads "
            "digits.search.lr); nothing will change — use -S digits.search.lr=...") in done.stdout + done.stderr
    assert "Running stage 'search'" not in done.stdout
    assert run(ablated, "dvc exp list --name-only").stdout.split() == before
    assert run(ablated, "git status --porcelain").stdout == ""


def test_another_task_in_a_one_task_workspace_is_refused(ablated):
    done = run(ablated, "dvc exp run --temp -n markov -S task=markov", check=False)
    assert done.returncode != 0
    assert "check-params: error: task is markov, but dvc.yaml tracks the params of task digits only" in \
        done.stdout + done.stderr


def test_the_readmes_report_refresh_reruns_the_report_alone(ablated):
    """README: after more experiments `dvc repro -f -s report` refreshes the comparison. `-f` alone forces every
    stage upstream of the target (a whole search and evaluation again: QA); with `-s` the report runs alone and
    its comparison holds the experiments run since."""
    assert "dvc repro -f -s report" in README and "dvc repro -f report" not in README
    done = run(ablated, "dvc repro -f -s report")
    ran = re.findall(r"Running stage '([\w-]+)'", done.stdout)
    assert ran == ["report"], done.stdout
    comparison = (ablated / "metrics/comparison.csv").read_text()
    assert all(name in comparison for name, _, _ in RUN), comparison
    run(ablated, "git checkout -- . && dvc checkout")  # back to the committed baseline for what follows
