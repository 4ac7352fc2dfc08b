"""repo: the repository root (DVC_ROOT) and data.root as a folder, in the workspace and in a DVC temp copy."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ednas_core.repo import download_lock, raw_data_root, repo_root


def test_repo_root_is_dvc_root_else_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_ROOT", raising=False)
    assert repo_root() == tmp_path.resolve()
    monkeypatch.setenv("DVC_ROOT", str(tmp_path / "repo"))
    assert repo_root() == (tmp_path / "repo").resolve()


def copy_of(tmp_path: Path, monkeypatch) -> tuple[Path, Path]:
    """A repository and a DVC temp copy of it (cwd; DVC_ROOT names the repository)."""
    repo, copy = tmp_path / "repo", tmp_path / "repo" / ".dvc" / "tmp" / "exps" / "run" / "abc"
    copy.mkdir(parents=True)
    monkeypatch.chdir(copy)
    monkeypatch.setenv("DVC_ROOT", str(repo))
    return repo.resolve(), copy.resolve()


def test_relative_root_missing_in_the_copy_is_the_repositorys(tmp_path, monkeypatch):
    repo, _ = copy_of(tmp_path, monkeypatch)
    assert raw_data_root("data/raw") == repo / "data" / "raw"     # where it lies, or where a download goes


def test_relative_root_in_the_copy_is_the_copys(tmp_path, monkeypatch):
    _, copy = copy_of(tmp_path, monkeypatch)
    (copy / "data" / "raw").mkdir(parents=True)                   # e.g. raw data that DVC tracks
    assert raw_data_root("data/raw") == copy / "data" / "raw"


def test_absolute_root_is_unchanged(tmp_path, monkeypatch):
    copy_of(tmp_path, monkeypatch)
    assert raw_data_root(str(tmp_path / "elsewhere")) == tmp_path / "elsewhere"
    assert raw_data_root("~/cifar") == Path.home() / "cifar"


def test_workspace_run_reads_its_own_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    assert raw_data_root("data/raw") == tmp_path.resolve() / "data" / "raw"


def test_download_lock_serialises(tmp_path):
    events: list[str] = []

    def second() -> None:
        with download_lock(tmp_path / "raw"):
            events.append("second")

    with download_lock(tmp_path / "raw"):
        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        events.append("first done")
    thread.join(timeout=10)
    assert events == ["first done", "second"]


def test_imagenet_images_of_a_temp_copy_are_the_repositorys(tmp_path, monkeypatch):
    from ednas_core.config import DataConfig
    from ednas_core.tasks.imagenet import imagenet_root

    repo, _ = copy_of(tmp_path, monkeypatch)
    assert imagenet_root(DataConfig(root="data/raw")) == repo / "data" / "raw" / "imagenet"



def test_download_lock_where_no_lock_file_can_be_made_lets_the_download_say_why(tmp_path):
    (tmp_path / "file").write_text("")                # data.root under a file: mkdir fails (as on a read-only disk)
    entered = False
    with download_lock(tmp_path / "file" / "raw"):   # no lock, and no OSError of its own
        entered = True
    assert entered
