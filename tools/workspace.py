"""A pipeline workspace: a copy of the project in its own git repository with DVC, with some params.yaml keys
overridden (comments kept) and dvc.yaml's params lists narrowed to the selected task's sections (its stages then
rerun only for the keys they read, and `dvc params diff --deps` lists only those). `make demo` and the
end-to-end tests run the real `dvc repro` in one."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
SKIP = ("tests/", "benchmarks/", "demo/", "demo-text/")
# what a pipeline run writes: never copied from the project unless git tracks it (data/README.md), so that a run at
# the project root does not overwrite the workspace's own results
RUN_OUTPUTS = ("data/", "metrics/", "dvc.lock", "dvc_plots/")
# never committed in a workspace, and kept out of its `git status`
IGNORED = ("/mlflow.db", "/mlruns/", "/dvc_plots/")
GIT_IDENTITY = ["-c", "user.name=ednas", "-c", "user.email=ednas@localhost"]


def project_files(src: Path = PROJECT) -> list[str]:
    """Files git tracks or would track (not ignored), minus tests, benchmarks and untracked run outputs."""
    def ls(*args: str) -> list[str]:
        return [f for f in subprocess.run(["git", "ls-files", *args], cwd=src, capture_output=True, text=True,
                                          check=True).stdout.split("\n") if f]

    tracked = set(ls())
    return [f for f in ls("-co", "--exclude-standard") if not f.startswith(SKIP) and (src / f).is_file()
            and (f in tracked or not f.startswith(RUN_OUTPUTS))]


def set_params(path: Path, overrides: dict[str, Any]) -> None:
    """Sets dotted keys (digits.search.epochs) in a YAML file, keeping its comments and layout."""
    from ruamel.yaml import YAML

    yaml = YAML()
    data = yaml.load(path.read_text())
    for dotted, value in overrides.items():
        node = data
        *parents, last = dotted.split(".")
        for key in parents:
            node = node[key]
        if last not in node:
            raise KeyError(f"{dotted} is not a key of {path}")
        node[last] = value
    with open(path, "w") as f:
        yaml.dump(data, f)


def narrow_to_task(path: Path, task: str) -> list[str]:
    """Keeps in the params lists of dvc.yaml at `path` the keys every task shares and the sections of `task`
    (digits: digits.search, not search or ptb.search); returns the keys it took out. Comments are kept."""
    from ruamel.yaml import YAML

    from stages.common import key_task

    yaml = YAML()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 4096
    data = yaml.load(path.read_text())
    removed = []
    for stage in data.get("stages", {}).values():
        params = stage.get("params") or []
        for index in reversed(range(len(params))):
            if isinstance(params[index], str) and key_task(params[index]) not in (None, task):
                removed.append(params.pop(index))
    if removed:
        buffer = io.StringIO()
        yaml.dump(data, buffer)
        path.write_text(f"# This copy tracks only the params of task {task}: tools/workspace.py took the other tasks' "
                        f"sections out of the params lists.\n{buffer.getvalue()}")
    return removed


def ignore(dst: Path, patterns: tuple[str, ...] = IGNORED) -> None:
    """Adds the patterns missing from dst/.gitignore."""
    path = dst / ".gitignore"
    text = path.read_text() if path.is_file() else ""
    missing = [p for p in patterns if p not in text.splitlines()]
    if missing:
        path.write_text(text + ("" if not text or text.endswith("\n") else "\n") + "\n".join(missing) + "\n")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True)


def commit(dst: Path, message: str, paths: list[str]) -> bool:
    """Commits the changes (new, changed and deleted files) under `paths` (git pathspecs), if there are any;
    returns whether it did."""
    git(dst, "add", "-A", "--", *paths)
    staged = subprocess.run(["git", "diff", "--cached", "--quiet"], cwd=dst).returncode != 0
    if staged:
        git(dst, "commit", "-q", "-m", message)
    return staged


def commit_run(dst: Path, message: str) -> bool:
    """Commits what a `dvc repro` leaves for git (dvc.lock, metrics/ and the .gitignore files DVC writes for its
    outputs), so that the run is the baseline `dvc exp show` and `dvc metrics diff` compare with."""
    return commit(dst, message, ["dvc.lock", "metrics", ":(glob)**/.gitignore"])


def make_workspace(dst: Path, overrides: dict[str, Any], src: Path = PROJECT, narrow: bool = True) -> Path:
    """Copies the project into `dst` (updating an existing copy), narrows dvc.yaml to the selected task (unless
    `narrow` is false) and commits it; returns dst."""
    from ruamel.yaml import YAML

    dst.mkdir(parents=True, exist_ok=True)
    files = project_files(src)
    for rel in files:
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    set_params(dst / "params.yaml", overrides)
    if narrow:
        narrow_to_task(dst / "dvc.yaml", YAML(typ="safe").load((dst / "params.yaml").read_text())["task"])
    ignore(dst)
    if not (dst / ".git").exists():
        git(dst, "init", "-q", "-b", "main")
    commit(dst, "workspace from the project", [*files, ".gitignore"])
    return dst


def dvc_env() -> dict[str, str]:
    """The environment for `dvc` and the stages: this interpreter's bin folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("DVC_ROOT", None)
    return env
