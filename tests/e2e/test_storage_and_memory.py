"""A stage that cannot write its outputs, or whose network does not fit in memory, stops with one line naming
the folder or the settings to lower, and the earlier run's outputs are still there afterwards. The file-system
cases mount a real tmpfs (read-only, or 64 KiB) over the stage's output folder, so they need root."""

from __future__ import annotations

import hashlib
import subprocess
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest

from pipeline import stage
from tools.workspace import set_params

pytestmark = pytest.mark.slow


def _mount_tmpfs(target: Path, options: str) -> bool:
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True)
    return done.returncode == 0


@contextmanager
def tmpfs_over(folder: Path, options: str) -> Iterator[None]:
    """Mounts a tmpfs over `folder` (hiding its files until unmounted); skips the test where mounting is not
    allowed (not root, or no CAP_SYS_ADMIN)."""
    try:
        mounted = _mount_tmpfs(folder, options)
    except OSError:
        mounted = False
    if not mounted:
        pytest.skip("needs `mount -t tmpfs` (root with CAP_SYS_ADMIN) to make a full or read-only folder")
    try:
        yield
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def one_error_line(done: subprocess.CompletedProcess, stage_name: str) -> str:
    assert done.returncode == 1, done.stderr
    lines = [line for line in done.stderr.splitlines() if f"{stage_name}: error:" in line]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_read_only_output_folder_is_named_before_any_work(workspace):
    search_dir = workspace / "data/search"
    before = digests(search_dir)
    with tmpfs_over(search_dir, "ro,size=1m"):
        done = stage(workspace, "search")
    line = one_error_line(done, "search")
    assert "data/search/ is not writable (read-only file system)" in line
    assert "epoch 1/" not in done.stderr  # refused up front, not after an epoch of work
    assert digests(search_dir) == before


def test_full_disk_is_one_line_naming_the_file(workspace):
    search_dir = workspace / "data/search"
    before = digests(search_dir)
    with tmpfs_over(search_dir, "size=64k"):  # room for the write check, not for a checkpoint
        done = stage(workspace, "search")
        left = list(search_dir.iterdir())
    line = one_error_line(done, "search")
    assert "(no space left on the device)" in line and "data/search/" in line
    assert not [p for p in left if p.name.endswith(".tmp")]  # no half-written temp file stays behind
    assert digests(search_dir) == before


def test_network_too_large_for_memory_names_the_settings_to_lower(workspace):
    params = workspace / "params.yaml"
    original = params.read_bytes()
    before = digests(workspace / "data/search")
    try:
        set_params(params, {"digits.search.init_channels": 2 ** 22})  # terabytes of weights
        done = stage(workspace, "search")
    finally:
        params.write_bytes(original)
    line = one_error_line(done, "search")
    assert "out of memory (host memory)" in line
    assert "lower digits.search.batch_size / policy_batch_size, or the network (init_channels, layers" in line
    assert digests(workspace / "data/search") == before
