"""A pipeline workspace: a copy of the project in its own git repository with DVC, with some params.yaml keys
overridden (comments kept). `make demo` and the end-to-end tests run the real `dvc repro` in one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
SKIP = ("tests/", "benchmarks/", "demo/", "demo-text/")
GIT_IDENTITY = ["-c", "user.name=ednas", "-c", "user.email=ednas@localhost"]


def project_files(src: Path = PROJECT) -> list[str]:
    """Files git tracks or would track (not ignored), minus tests and benchmarks."""
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=src, capture_output=True, text=True,
                         check=True).stdout.split("\n")
    return [f for f in out if f and not f.startswith(SKIP) and (src / f).is_file()]


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


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *GIT_IDENTITY, *args], cwd=cwd, check=True, capture_output=True, text=True)


def make_workspace(dst: Path, overrides: dict[str, Any], src: Path = PROJECT) -> Path:
    """Copies the project into `dst` (updating an existing copy) and commits it; returns dst."""
    dst.mkdir(parents=True, exist_ok=True)
    for rel in project_files(src):
        target = dst / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src / rel, target)
    set_params(dst / "params.yaml", overrides)
    if not (dst / ".git").exists():
        git(dst, "init", "-q", "-b", "main")
    git(dst, "add", "-A")
    status = subprocess.run(["git", "status", "--porcelain"], cwd=dst, capture_output=True, text=True).stdout
    if status.strip():
        git(dst, "commit", "-q", "-m", "workspace from the project")
    return dst


def dvc_env() -> dict[str, str]:
    """The environment for `dvc` and the stages: this interpreter's bin folder first on PATH."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env.pop("DVC_ROOT", None)
    return env
