"""One GPU per process for `runtime.device: auto`, on CPU: the GPU lists are injected, the lock folder is a
temporary one, and the other claimants are real processes (flock is per open file, so only other processes show
that two claimants never share a card)."""

from __future__ import annotations

import dataclasses
import io
import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator, Sequence

import pytest
import torch

from ednas_core import gpu_claim
from ednas_core.config import ConfigError
from ednas_core.gpu_claim import GpuInfo, claim_gpu, current_claim, lock_key, read_holder, release_claim
from ednas_core.runtime import claimed_gpu, resolve_device

ROOT = Path(__file__).resolve().parents[1]
TWO = [GpuInfo(0, "11111111-aaaa", "Fake A"), GpuInfo(1, "22222222-bbbb", "Fake B")]
SWAPPED = [GpuInfo(0, "22222222-bbbb", "Fake B"), GpuInfo(1, "11111111-aaaa", "Fake A")]

# Claims a GPU of the JSON list argv[1] under the lock folder argv[2] (wait argv[3] seconds, "none": forever),
# prints it as JSON (or "ERROR <message>" and exits 3), then holds it until stdin closes.
CLAIMANT = """
import dataclasses, json, sys
from pathlib import Path
from ednas_core.gpu_claim import ConfigError, GpuInfo, claim_gpu  # not via ednas_core.config: no torch import
devices = [GpuInfo(**d) for d in json.loads(sys.argv[1])]
wait_s = None if sys.argv[3] == "none" else float(sys.argv[3])
try:
    gpu = claim_gpu(devices, Path(sys.argv[2]), wait_s, poll_s=0.05, report_every_s=60.0)
except ConfigError as exc:
    print("ERROR " + str(exc), flush=True)
    sys.exit(3)
again = claim_gpu(list(reversed(devices)), Path(sys.argv[2]), 0.0)
print(json.dumps({"claimed": dataclasses.asdict(gpu), "again": dataclasses.asdict(again)}), flush=True)
sys.stdin.read()
"""


class Claimant:
    """A process that claims one of `devices` and holds it until released or killed."""

    def __init__(self, devices: Sequence[GpuInfo], lock_dir: Path, wait_s: float | None = 0.0,
                 env: dict[str, str] | None = None) -> None:
        full_env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "DVC_EXP_NAME")}
        full_env.update({"PYTHONPATH": str(ROOT), **(env or {})})
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CLAIMANT, json.dumps([dataclasses.asdict(d) for d in devices]), str(lock_dir),
             "none" if wait_s is None else str(wait_s)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=full_env)

    def result(self, timeout: float = 10.0) -> GpuInfo | str:
        """The claimed GPU, or the error line of a failed claim."""
        line = _readline(self.proc.stdout, timeout)
        if line.startswith("ERROR "):
            return line[len("ERROR "):]
        reply = json.loads(line)
        claimed, again = GpuInfo(**reply["claimed"]), GpuInfo(**reply["again"])
        assert again == claimed  # a second claim in the same process returns the same GPU
        return claimed

    def claimed(self) -> GpuInfo:
        result = self.result()
        assert isinstance(result, GpuInfo), result
        return result

    def release(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=10)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


def _readline(stream: io.TextIOBase, timeout: float) -> str:
    ready, _, _ = select.select([stream], [], [], timeout)
    assert ready, f"no line within {timeout}s"
    return stream.readline().rstrip("\n")


@pytest.fixture
def lock_dir(tmp_path: Path) -> Path:
    return tmp_path / "locks"


@pytest.fixture
def claimants() -> Iterator[list[Claimant]]:
    started: list[Claimant] = []
    yield started
    for claimant in started:
        if claimant.proc.poll() is None:
            claimant.kill()
        for stream in (claimant.proc.stdin, claimant.proc.stdout, claimant.proc.stderr):
            if not stream.closed:
                stream.close()


@pytest.fixture(autouse=True)
def no_claim_left() -> Iterator[None]:
    yield
    release_claim()


def start(claimants: list[Claimant], devices: Sequence[GpuInfo], lock_dir: Path, wait_s: float | None = 0.0,
          env: dict[str, str] | None = None) -> Claimant:
    claimant = Claimant(devices, lock_dir, wait_s, env)
    claimants.append(claimant)
    return claimant


def test_two_processes_get_different_gpus_and_a_third_fails_naming_the_holders(lock_dir, claimants):
    first = start(claimants, TWO, lock_dir)
    assert first.claimed() == TWO[0]
    second = start(claimants, TWO, lock_dir)
    assert second.claimed() == TWO[1]
    third = start(claimants, TWO, lock_dir, wait_s=0.3)
    error = third.result()
    assert isinstance(error, str) and "\n" not in error
    assert f"pid {first.proc.pid}" in error and f"pid {second.proc.pid}" in error
    assert "dvc queue start -j" in error and "cuda:N" in error and "cpu" in error
    assert third.proc.wait(timeout=10) == 3
    assert (lock_dir.stat().st_mode & 0o7777) == 0o1777  # other users of the box can lock too


def test_claimants_that_start_together_share_no_gpu(lock_dir, claimants):
    results = [claimant.result() for claimant in [start(claimants, TWO, lock_dir) for _ in range(4)]]
    claimed = [r for r in results if isinstance(r, GpuInfo)]
    assert sorted(g.index for g in claimed) == [0, 1]
    assert sum(isinstance(r, str) for r in results) == 2


def test_a_released_or_killed_holder_frees_its_gpu(lock_dir, claimants):
    first = start(claimants, TWO, lock_dir)
    assert first.claimed() == TWO[0]
    second = start(claimants, TWO, lock_dir)
    assert second.claimed() == TWO[1]
    second.kill()  # SIGKILL: no clean-up code runs, the OS drops the flock
    assert start(claimants, TWO, lock_dir).claimed() == TWO[1]
    first.release()
    assert start(claimants, TWO, lock_dir).claimed() == TWO[0]


def test_the_same_card_under_another_index_is_not_claimed_twice(lock_dir, claimants):
    first = start(claimants, TWO, lock_dir)
    assert first.claimed().uuid == TWO[0].uuid
    other_order = start(claimants, SWAPPED, lock_dir)  # its index 0 is the other card: free
    assert other_order.claimed() == SWAPPED[0]
    assert isinstance(start(claimants, SWAPPED, lock_dir).result(), str)


def test_without_uuids_cuda_visible_devices_names_the_physical_card(lock_dir, claimants):
    only_card_1 = start(claimants, [GpuInfo(0, "", "Fake")], lock_dir, env={"CUDA_VISIBLE_DEVICES": "1"})
    assert only_card_1.claimed().index == 0
    both = [GpuInfo(0, "", "Fake"), GpuInfo(1, "", "Fake")]
    assert start(claimants, both, lock_dir, env={"CUDA_VISIBLE_DEVICES": "0,1"}).claimed().index == 0
    assert isinstance(start(claimants, both, lock_dir, env={"CUDA_VISIBLE_DEVICES": "0,1"}).result(), str)


def test_a_waiting_claim_gets_the_gpu_its_holder_gives_up(lock_dir, claimants):
    first = start(claimants, TWO, lock_dir, env={"DVC_EXP_NAME": "exp-one"})
    assert first.claimed() == TWO[0]
    second = start(claimants, TWO, lock_dir, env={"DVC_EXP_NAME": "exp-two"})
    assert second.claimed() == TWO[1]
    waiting = start(claimants, TWO, lock_dir, wait_s=None)
    notice = _readline(waiting.proc.stderr, 10.0)  # one line when the wait starts, naming the holders
    assert "waiting forever" in notice and "'exp-one'" in notice and "'exp-two'" in notice
    first.kill()
    assert waiting.claimed() == TWO[0]
    assert read_holder(lock_dir / f"gpu-{lock_key(TWO[0])}.lock")["pid"] == str(waiting.proc.pid)


def test_a_claim_in_this_process_is_idempotent_and_holds_the_lock(lock_dir, claimants):
    assert current_claim() is None
    gpu = claim_gpu(TWO, lock_dir, wait_s=0.0)
    assert gpu == TWO[0] and current_claim() == gpu and claimed_gpu() == gpu
    assert claim_gpu(list(reversed(TWO)), lock_dir, wait_s=0.0) == gpu
    holder = read_holder(lock_dir / f"gpu-{lock_key(gpu)}.lock")
    assert holder["pid"] == str(os.getpid()) and holder["cwd"] == os.getcwd()
    assert start(claimants, TWO, lock_dir).claimed() == TWO[1]
    release_claim()
    assert current_claim() is None
    assert start(claimants, TWO, lock_dir).claimed() == TWO[0]  # given back by this process


def test_the_wait_bound_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(gpu_claim.WAIT_ENV, raising=False)
    assert gpu_claim.wait_s_from_env() is None
    monkeypatch.setenv(gpu_claim.WAIT_ENV, "2.5")
    assert gpu_claim.wait_s_from_env() == 2.5
    monkeypatch.setenv(gpu_claim.WAIT_ENV, "soon")
    with pytest.raises(ConfigError, match="EDNAS_GPU_WAIT_S"):
        gpu_claim.wait_s_from_env()


def test_auto_on_a_cpu_machine_is_cpu_and_leaves_the_lock_folder_alone(lock_dir, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv(gpu_claim.LOCK_DIR_ENV, str(lock_dir))
    assert resolve_device("auto") == torch.device("cpu")
    assert not lock_dir.exists() and current_claim() is None


def test_auto_with_cuda_claims_a_free_gpu_and_explicit_cuda_never_locks(lock_dir, claimants, monkeypatch, capsys):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "set_device", lambda index: None)
    monkeypatch.setattr(gpu_claim, "visible_gpus", lambda: list(TWO))
    monkeypatch.setenv(gpu_claim.LOCK_DIR_ENV, str(lock_dir))
    monkeypatch.setenv(gpu_claim.WAIT_ENV, "0")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    assert not lock_dir.exists() and current_claim() is None
    assert start(claimants, TWO, lock_dir).claimed() == TWO[0]
    assert resolve_device("auto") == torch.device("cuda", 1)
    assert claimed_gpu() == TWO[1]
    assert "cuda:1 (Fake B, 22222222-bbbb)" in capsys.readouterr().err
    assert resolve_device("auto") == torch.device("cuda", 1)
    release_claim()
    assert start(claimants, TWO, lock_dir).claimed() == TWO[1]  # both held by other processes now
    with pytest.raises(ConfigError, match="held after waiting") as raised:
        resolve_device("auto")
    assert "\n" not in str(raised.value)


THREE = [*TWO, GpuInfo(2, "33333333-cccc", "Fake C")]


def test_several_gpus_are_claimed_all_or_none(lock_dir, claimants):
    holder = start(claimants, THREE, lock_dir)
    assert holder.claimed() == THREE[0]
    assert gpu_claim.claim_gpus(THREE, 2, lock_dir, wait_s=0.0) == THREE[1:]
    assert gpu_claim.current_claims() == THREE[1:]
    release_claim()
    second = start(claimants, THREE, lock_dir)
    assert second.claimed() == THREE[1]
    with pytest.raises(ConfigError, match="no 2 free GPUs among the 3 visible GPUs") as error:
        gpu_claim.claim_gpus(THREE, 2, lock_dir, wait_s=0.2, poll_s=0.05)
    assert "\n" not in str(error.value)
    assert gpu_claim.current_claims() == []  # the one free GPU was not kept while waiting for a second
    assert start(claimants, THREE, lock_dir).claimed() == THREE[2]
    with pytest.raises(ConfigError, match="runtime.gpus: 4 asked for but 3 CUDA device"):
        gpu_claim.claim_gpus(THREE, 4, lock_dir, wait_s=0.0)


def test_the_child_sees_exactly_the_claimed_gpus(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert gpu_claim.visible_devices_value(THREE[1:]) == "1,2"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,GPU-abc")  # indices are positions in the parent's list
    assert gpu_claim.visible_devices_value(THREE[1:]) == "5,GPU-abc"


def test_a_multi_gpu_stage_claims_its_gpus_for_torchrun_and_gives_them_back(lock_dir, monkeypatch):
    from ednas_core import distributed

    for var in distributed.TORCHRUN_VARS:
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 3)
    monkeypatch.setattr(gpu_claim, "visible_gpus", lambda: list(THREE))
    monkeypatch.setenv(gpu_claim.LOCK_DIR_ENV, str(lock_dir))
    monkeypatch.setenv(gpu_claim.WAIT_ENV, "0")
    seen = {}

    def torchrun(args, env, preexec_fn):
        seen.update(args=args, visible=env["CUDA_VISIBLE_DEVICES"], held=gpu_claim.current_claims(),
                    ends_with_stage=preexec_fn is distributed.end_with_parent)
        return 0

    monkeypatch.setattr(distributed.subprocess, "call", torchrun)
    gpu_claim.claim_gpus(THREE[:1], 1, lock_dir, wait_s=0.0)  # another holder of GPU 0 (a separate open file)
    held_by_other = gpu_claim._claims.pop()  # keep its lock, but not as this process's claim
    try:
        assert distributed.maybe_relaunch("stages.search", 2, "auto") == 0
    finally:
        held_by_other.handle.close()
    assert seen["visible"] == "1,2" and seen["held"] == THREE[1:]
    assert "--nproc-per-node=2" in seen["args"]
    assert seen["ends_with_stage"]  # a killed stage takes its torchrun (and ranks) with it
    assert gpu_claim.current_claims() == []  # released when the stage's torchrun ended
