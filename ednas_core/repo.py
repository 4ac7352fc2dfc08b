"""Where a stage's shared files are: the repository the run belongs to, and the raw data under it.

`dvc exp run --temp` and `--queue` run each experiment in a copy of the repository under .dvc/tmp/exps that holds
what git and DVC track, but not git-ignored folders such as data/raw (CIFAR-10, PTB, the NAS-Bench-201 table,
ImageNet). DVC sets DVC_ROOT to the original repository in that copy, so a stage there finds the one mlflow.db
(ednas_core.tracking) and the raw data the workspace holds, instead of downloading them again or, offline,
stopping on data that is right there.
"""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

DOWNLOAD_LOCK = ".download.lock"  # in data.root: one process at a time checks for and downloads a dataset


def repo_root() -> Path:
    """The original repository root: DVC_ROOT under DVC (also in temp experiment copies), else the cwd."""
    return Path(os.environ.get("DVC_ROOT") or os.getcwd()).resolve()


def raw_data_root(root: str | Path) -> Path:
    """data.root as a folder: an absolute path as it is; a relative one in the working copy when it is there
    (a plain `dvc repro`, or raw data that DVC tracks and so checks out into every copy), else the same folder
    of the original repository (a `dvc exp run --temp/--queue` copy), which is also where a download goes."""
    path = Path(root).expanduser()
    if path.is_absolute():
        return path
    own = Path.cwd() / path
    return own if own.exists() else repo_root() / path


@contextmanager
def download_lock(root: Path) -> Iterator[None]:
    """Serialises looking for and downloading raw data in `root` across processes (queued experiments share the
    repository's data.root: the second waits for the first download instead of writing the same files). A folder
    that cannot hold the lock file (read-only) gets no lock: the download then says itself why it fails."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        lock = open(root / DOWNLOAD_LOCK, "w")
    except OSError:
        yield
        return
    with lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
