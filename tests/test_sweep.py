"""Sweeps (ednas_core/sweep.py, tools/sweep.py): the grid in DVC's -S syntax and its order, experiment names, the
one-line refusals before anything is submitted (bad keys, values and syntax, a dirty tree, a dead tracking server,
no submitit), and one job's clone / run / push in a tiny DVC project (a failing stage, a refused push)."""

from __future__ import annotations

import json
import pickle
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ednas_core.sweep import (FAILED, PIPELINE_FAILED, PUSH_FAILED, SUCCEEDED, SweepError, SweepJob, error_line,
                              expand_grid)
from tools.sweep import main
from tools.workspace import GIT_IDENTITY, PROJECT, narrow_to_task, set_params

SEED_BY_STRATEGY = ["runtime.seed=1,2", "digits.search.strategy=ednas,random"]


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def repo(tmp_path, monkeypatch) -> Path:
    """A committed repository with the project's params.yaml (task digits) and dvc.yaml narrowed to digits, and a
    bare `origin` holding its branch; the cwd."""
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("params.yaml", "dvc.yaml"):
        shutil.copy(PROJECT / name, repo / name)
    set_params(repo / "params.yaml", {"task": "digits"})
    narrow_to_task(repo / "dvc.yaml", "digits")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "project")
    git(tmp_path, "init", "-q", "--bare", "origin.git")
    git(repo, "remote", "add", "origin", str(tmp_path / "origin.git"))
    git(repo, "push", "-q", "origin", "main")
    monkeypatch.chdir(repo)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return repo


def sweep(capsys, workdir: Path, *args: str) -> tuple[int, str, str]:
    code = main(["--executor", "local", "--workdir", str(workdir), *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(capsys, workdir: Path, *args: str) -> str:
    """The one error line of a sweep that must stop before submitting anything."""
    code, out, err = sweep(capsys, workdir, *args)
    errors = [line for line in err.splitlines() if line.startswith("sweep: error: ")]
    assert code == 2 and len(errors) == 1 and out == "", (code, out, err)
    assert not workdir.exists(), "something was submitted"
    return errors[0].removeprefix("sweep: error: ")


# --- the grid -----------------------------------------------------------------------------------------------------

def test_the_grid_is_the_product_of_all_options_in_dvc_order_with_readable_names():
    points = expand_grid(SEED_BY_STRATEGY, "p")
    assert [p.name for p in points] == ["p-seed1-ednas", "p-seed1-random", "p-seed2-ednas", "p-seed2-random"]
    assert points[1].overrides == ("runtime.seed=1", "digits.search.strategy=random")
    assert points[2].values == {"runtime.seed": 2, "digits.search.strategy": "ednas"}  # typed as DVC writes them


def test_range_and_choice_expand_as_dvc_expands_them():
    assert [p.values["runtime.seed"] for p in expand_grid(["runtime.seed=range(1,4)"], "p")] == [1, 2, 3]
    assert [p.values["runtime.seed"] for p in expand_grid(["runtime.seed=range(0,7,3)"], "p")] == [0, 3, 6]
    lrs = expand_grid(["digits.search.lr=0.1,1e-3", "digits.search.strategy=choice(ednas,rea)"], "p")
    assert [p.name for p in lrs] == ["p-lr0.1-ednas", "p-lr0.1-rea", "p-lr0.001-ednas", "p-lr0.001-rea"]


def test_keys_that_do_not_vary_are_named_only_when_none_varies():
    assert [p.name for p in expand_grid(["runtime.seed=1", "digits.search.strategy=ednas,random"], "p")] == [
        "p-ednas", "p-random"]
    assert [p.name for p in expand_grid(["runtime.seed=1", "digits.search.augment=true"], "p")] == [
        "p-seed1-augment"]
    assert [p.name for p in expand_grid([], "p")] == ["p"]


def test_names_are_unique_valid_experiment_names_even_for_awkward_values(tmp_path):
    points = expand_grid(["data.root='/shared/a b',/shared/a-b,'x..y.lock'", "digits.search.augment=true,false"],
                         "sw")
    names = [p.name for p in points]
    assert len(set(names)) == len(names) == 6
    assert all(len(n) <= 80 for n in names)
    assert names[0].startswith("sw-shared-a-b-augment-")  # two values give the same words: a hash tells them apart
    for name in names:  # DVC stores experiments under refs/exps/<baseline>/<name>
        assert subprocess.run(["git", "check-ref-format", f"refs/exps/ab/cdef/{name}"]).returncode == 0, name


@pytest.mark.parametrize("spec, says", [
    ("runtime.seed=range(1", "not DVC's -S syntax"),
    ("runtime.seed", "not DVC's -S syntax"),
    ("+runtime.extra=1", "drop the '+'"),
    ("~runtime.seed", "drop the '+', '++', '~'"),
    ("runtime.seed=interval(0,1)", "interval sweeps cannot be expanded"),
    ("runtime.seed=glob(*)", "glob choice sweeps cannot be expanded"),
    ("runtime.seed=range(3,3)", "the sweep has no values"),
    ("runtime.seed=1,2,1", "runtime.seed=1 is given twice"),
    ("other.yaml:runtime.seed=1", "only params.yaml's keys can be swept"),
])
def test_bad_syntax_is_one_line_naming_the_option(spec, says):
    with pytest.raises(SweepError) as err:
        expand_grid([spec], "p")
    assert says in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith(f"-S {spec}: ")


def test_a_key_in_two_options_and_a_bad_prefix_are_refused():
    with pytest.raises(SweepError, match=r"runtime.seed is given by two -S options; .* -S runtime.seed=v1,v2"):
        expand_grid(["runtime.seed=1", "runtime.seed=2"], "p")
    with pytest.raises(SweepError, match="--name-prefix 'my sweep': use up to 40 letters"):
        expand_grid(["runtime.seed=1"], "my sweep")


# --- refused before submitting ------------------------------------------------------------------------------------

def test_an_unknown_key_names_the_key_and_submits_nothing(repo, tmp_path, capsys):
    line = refused(capsys, tmp_path / "work", "-S", "search.lrr=0.1,0.2")
    assert line.startswith("search.lrr: unknown key; did you mean search.lr?")


def test_a_bad_value_of_one_point_names_key_and_value_and_submits_nothing(repo, tmp_path, capsys):
    line = refused(capsys, tmp_path / "work", "-S", "runtime.seed=1,2", "-S", "digits.search.epochs=3,0")
    assert line.startswith("digits.search.epochs: got 0; expected an integer >= 1")
    assert refused(capsys, tmp_path / "work", "-S", "runtime.seed.x=1").startswith(
        "runtime.seed is a value, not a section")


def test_another_task_s_key_says_which_key_to_use(repo, tmp_path, capsys):
    line = refused(capsys, tmp_path / "work", "-S", "search.lr=0.01,0.1")
    assert "search.lr belongs to task cifar10, but task is digits" in line and "use -S digits.search.lr=" in line


def test_a_dirty_working_tree_is_refused(repo, tmp_path, capsys):
    (repo / "params.yaml").write_text((repo / "params.yaml").read_text() + "\n# edited\n")
    line = refused(capsys, tmp_path / "work", "-S", "runtime.seed=1,2")
    assert "uncommitted changes to tracked files (params.yaml)" in line and "commit them first" in line


def test_a_tracking_server_that_does_not_answer_is_refused(repo, tmp_path, capsys, monkeypatch):
    uri = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    line = refused(capsys, tmp_path / "work", "-S", "runtime.seed=1,2")
    assert line.startswith(f"MLFLOW_TRACKING_URI={uri}: no MLflow server answers (")
    assert "start it" in line and "fix the URL" in line


def test_without_submitit_the_line_says_how_to_install_it(repo, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)  # makes `import submitit` fail
    assert refused(capsys, tmp_path / "work", "-S", "runtime.seed=1") == \
        "submitit is not installed; pip install -e '.[cluster]'"


def test_an_unknown_git_remote_and_a_workdir_in_the_repository_are_refused(repo, tmp_path, capsys):
    assert refused(capsys, tmp_path / "work", "--git-remote", "upstream", "-S", "runtime.seed=1").startswith(
        "--git-remote upstream: no such git remote")
    line = refused(capsys, repo / "sweeps", "-S", "runtime.seed=1")
    assert line == f"--workdir {repo / 'sweeps'} is inside the repository; give a folder outside it (the clones are " \
                   "repositories of their own)"


def test_a_dry_run_lists_the_commands_and_warns_without_a_tracking_server(repo, tmp_path, capsys):
    code, out, err = sweep(capsys, tmp_path / "work", "--dry-run", "-S", SEED_BY_STRATEGY[0], "-S",
                           SEED_BY_STRATEGY[1])
    assert code == 0 and not (tmp_path / "work").exists()
    assert out.startswith("sweep: 4 experiments from commit ") and out.count("dvc exp run --name ") == 4
    assert ("  sweep-seed2-random: dvc exp run --name sweep-seed2-random -S runtime.seed=2 -S "
            "digits.search.strategy=random") in out
    assert "sweep: warning: MLFLOW_TRACKING_URI is not set" in err


def test_a_clone_left_by_another_sweep_of_the_same_name_is_refused(repo, tmp_path, capsys):
    stale = tmp_path / "work" / "sweep-seed1"
    (stale / ".git").mkdir(parents=True)
    (stale / ".git" / "ednas-sweep.json").write_text(json.dumps({"name": "sweep-seed1", "commit": "0" * 40,
                                                                 "overrides": ["runtime.seed=1"]}))
    code, out, err = sweep(capsys, tmp_path / "work", "-S", "runtime.seed=1")
    assert code == 2 and "is the clone of another experiment named sweep-seed1" in err
    assert not (tmp_path / "work" / "submitit").exists()


def test_the_error_line_of_a_failed_pipeline_is_the_stage_s():
    out = ["Running stage 'search':", "> python -m stages.search", "search: error: digits.search.lr: got -1.0",
           "ERROR: failed to reproduce 'search': failed to run: python -m stages.search, exited with 1"]
    assert error_line(out) == "search: error: digits.search.lr: got -1.0"
    assert error_line(out[-1:] + ["", "progress 10%\rprogress 100%"]) == out[-1]
    assert error_line(["Everything is fine", "until now"]) == "until now"


# --- one job: clone, run, push ------------------------------------------------------------------------------------

@pytest.fixture
def tiny_dvc(tmp_path) -> tuple[Path, Path, str]:
    """A DVC project of one stage (writes out.txt from param x, fails when x is 0), committed, and a bare remote."""
    src, remote = tmp_path / "src", tmp_path / "remote.git"
    src.mkdir()
    git(src, "init", "-q", "-b", "main")
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=src, check=True)
    (src / "params.yaml").write_text("x: 1\n")
    (src / "train.py").write_text("import sys, yaml\nx = yaml.safe_load(open('params.yaml'))['x']\n"
                                  "if x == 0:\n    sys.exit('train: error: x must not be 0; give another value')\n"
                                  "open('out.txt', 'w').write(str(x))\n")
    (src / "dvc.yaml").write_text("stages:\n  train:\n    cmd: python train.py\n    deps: [train.py]\n"
                                  "    params: [x]\n    outs: [out.txt]\n")
    git(src, "add", ".")
    git(src, "commit", "-q", "-m", "tiny")
    git(tmp_path, "init", "-q", "--bare", str(remote))
    return src, remote, git(src, "rev-parse", "HEAD").strip()


def job_for(tmp_path: Path, tiny: tuple[Path, Path, str], x: int) -> SweepJob:
    src, remote, commit = tiny
    return SweepJob(f"t-x{x}", (f"x={x}",), str(src), commit, str(tmp_path / "work" / f"t-x{x}"), "origin",
                    str(remote))


def test_a_job_runs_and_pushes_its_experiment_and_a_rerun_reuses_its_clone(tmp_path, tiny_dvc):
    job = pickle.loads(pickle.dumps(job_for(tmp_path, tiny_dvc, 2)))  # submitit pickles it
    result = job()
    assert result["status"] == SUCCEEDED and result["pushed"] and result["error"] is None, result
    assert result["params"] == {"x": "2"} and result["exp_ref"] == job.exp_ref
    assert git(tiny_dvc[1], "rev-parse", job.exp_ref).strip() == result["exp_rev"]
    assert (Path(job.clone) / "out.txt").read_text() == "2"
    assert job() == result  # a requeued job: same clone, the experiment is there, pushed again (nothing new)
    assert job.checkpoint().function is job  # submitit requeues the same job


def test_a_failing_stage_is_the_job_s_status_and_error_line(tmp_path, tiny_dvc):
    result = job_for(tmp_path, tiny_dvc, 0)()
    assert result["status"] == PIPELINE_FAILED and not result["pushed"] and result["exp_rev"] is None
    assert result["error"] == "train: error: x must not be 0; give another value"


def test_a_push_the_remote_refuses_is_the_job_s_status_and_error_line(tmp_path, tiny_dvc):
    """The remote holds another experiment of that name (an earlier sweep's): `dvc exp push` exits 0 and says so
    in yellow; the job checks the remote and reports it. (A pre-receive hook of a local bare remote would not
    refuse: DVC writes into a local path without running the remote's hooks.)"""
    src, remote, _ = tiny_dvc
    job = job_for(tmp_path, tiny_dvc, 3)
    git(src, "commit", "-q", "--allow-empty", "-m", "another experiment of that name")
    git(src, "push", "-q", str(remote), f"HEAD:{job.exp_ref}")
    result = job()
    assert result["status"] == PUSH_FAILED and not result["pushed"] and result["exp_rev"], result
    assert result["error"] == (f"dvc exp push to origin ({remote}) did not push t-x3: Local experiment t-x3 has "
                               "diverged from remote experiment with the same name. (another run pushed an "
                               "experiment of that name: use another --name-prefix)")
    gone = SweepJob("t-x3", ("x=3",), str(src), job.commit, job.clone, str(tmp_path / "gone.git"),
                    str(tmp_path / "gone.git"))()  # the same clone, experiment and all: only the push again
    assert gone["status"] == PUSH_FAILED and gone["exp_rev"] == result["exp_rev"]
    assert gone["error"].startswith(f"dvc exp push to {tmp_path / 'gone.git'} failed: ERROR: ")
    assert "No git repository was found" in gone["error"] and "\n" not in gone["error"]


def test_a_job_whose_commit_is_gone_fails_with_one_line(tmp_path, tiny_dvc):
    src, remote, _ = tiny_dvc
    result = SweepJob("t-x1", ("x=1",), str(src), "f" * 40, str(tmp_path / "work" / "t-x1"), str(remote),
                      str(remote))()
    assert result["status"] == FAILED and result["error"].startswith("git checkout for ")
    assert not (tmp_path / "work" / "t-x1").exists() and not (tmp_path / "work" / ".t-x1.cloning").exists()
