"""One GPU per process for `runtime.device: auto`: an exclusive, non-blocking `fcntl.flock` on a lock file per
physical GPU claims the first free visible GPU for the life of the process, so that `dvc queue start -j N` on an
N-GPU box gives each queue worker its own card.

The lock file is named by the GPU's UUID (or, where the UUID is unknown, by its CUDA_VISIBLE_DEVICES entry), so
processes that see the same card under different indices agree on it. The OS releases a flock when the process
exits, also on SIGKILL: there are no stale locks. The file holds a few `key=value` lines naming the holder (pid,
host, cwd, DVC experiment, start time) for the message of a process that waits.

Environment: EDNAS_GPU_LOCK_DIR (default /tmp/ednas-gpu-locks) and EDNAS_GPU_WAIT_S (default: wait forever)."""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Sequence, TextIO

from .knobs import ConfigError  # the class ednas_core.config re-exports; this import keeps torch out

LOCK_DIR_ENV = "EDNAS_GPU_LOCK_DIR"
WAIT_ENV = "EDNAS_GPU_WAIT_S"
DEFAULT_LOCK_DIR = Path("/tmp/ednas-gpu-locks")
POLL_S = 3.0
REPORT_EVERY_S = 60.0


@dataclass(frozen=True)
class GpuInfo:
    index: int  # torch's index in this process (after CUDA_VISIBLE_DEVICES)
    uuid: str   # "" when the driver does not tell
    name: str

    def describe(self) -> str:
        uuid = f", {self.uuid[:13]}" if self.uuid else ""
        return f"cuda:{self.index} ({self.name}{uuid})"


@dataclass
class _Claim:
    gpu: GpuInfo
    lock_path: Path
    handle: IO[bytes]  # kept open: the flock lives as long as this file object


_claims: list[_Claim] = []  # the registry: what this process holds (one GPU, or a multi-GPU stage's N)


def visible_gpus() -> list[GpuInfo]:
    """The GPUs torch sees, in index order, with their UUIDs where the driver reports them."""
    import torch

    if not torch.cuda.is_available():
        return []
    gpus = []
    for index in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(index)
        uuid = getattr(props, "uuid", None)
        gpus.append(GpuInfo(index=index, uuid=str(uuid) if uuid is not None else "", name=props.name))
    return gpus


def lock_key(gpu: GpuInfo) -> str:
    """Names the physical card: its UUID, else its CUDA_VISIBLE_DEVICES entry, else its index."""
    if gpu.uuid:
        key = f"uuid-{gpu.uuid}"
    else:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        entries = [e.strip() for e in visible.split(",")] if visible is not None else None
        if entries is None:
            key = f"index-{gpu.index}"
        elif gpu.index < len(entries) and entries[gpu.index]:
            key = f"index-{entries[gpu.index]}"
        else:
            key = f"visible-{visible}-index-{gpu.index}"
    return re.sub(r"[^A-Za-z0-9._-]", "_", key)


def lock_dir_from_env() -> Path:
    return Path(os.environ.get(LOCK_DIR_ENV) or DEFAULT_LOCK_DIR)


def wait_s_from_env() -> float | None:
    raw = os.environ.get(WAIT_ENV, "").strip()
    if not raw:
        return None
    try:
        wait_s = float(raw)
    except ValueError:
        raise ConfigError(f"{WAIT_ENV}: got {raw!r}; expected a number of seconds (unset: wait forever)") from None
    if not wait_s >= 0:
        raise ConfigError(f"{WAIT_ENV}: got {raw!r}; expected a number of seconds >= 0 (unset: wait forever)")
    return wait_s


def current_claim() -> GpuInfo | None:
    """The (first) GPU this process holds, or None (for a stage that wants to tag it)."""
    return _claims[0].gpu if _claims else None


def current_claims() -> list[GpuInfo]:
    """Every GPU this process holds."""
    return [c.gpu for c in _claims]


def release_claim() -> None:
    """Gives the held GPUs back before the process ends (the OS does it at exit anyway)."""
    while _claims:
        _claims.pop().handle.close()


def claim_from_env(count: int = 1) -> list[GpuInfo]:
    """Claims `count` of `visible_gpus()`, with the lock folder and wait bound from the environment."""
    gpus = visible_gpus()
    if not gpus:
        raise ConfigError("runtime.device: auto wanted to claim a GPU but no CUDA device is visible")
    return claim_gpus(gpus, count, lock_dir_from_env(), wait_s_from_env(), POLL_S)


def claim_gpu(devices: Sequence[GpuInfo], lock_dir: Path, wait_s: float | None, poll_s: float = POLL_S,
              report_every_s: float = REPORT_EVERY_S, out: TextIO | None = None) -> GpuInfo:
    """Claims one free GPU (claim_gpus with count 1)."""
    return claim_gpus(devices, 1, lock_dir, wait_s, poll_s, report_every_s, out)[0]


def claim_gpus(devices: Sequence[GpuInfo], count: int, lock_dir: Path, wait_s: float | None,
               poll_s: float = POLL_S, report_every_s: float = REPORT_EVERY_S,
               out: TextIO | None = None) -> list[GpuInfo]:
    """Claims the first `count` free GPUs of `devices` (index order) for the rest of the process, all or none
    (holding some while waiting for the rest could deadlock two multi-GPU stages), waiting while fewer are free:
    one line on `out` (stderr) at the start, then one about every `report_every_s`, naming the holders. wait_s
    None waits forever; after wait_s seconds a one-line ConfigError names the holders. A process that already
    holds GPUs gets those back."""
    if _claims:
        return current_claims()
    if not devices:
        raise ConfigError("runtime.device: auto found no GPU to claim")
    if count > len(devices):
        raise ConfigError(f"runtime.gpus: {count} asked for but {len(devices)} CUDA device(s) are visible; lower "
                          "runtime.gpus")
    out = out if out is not None else sys.stderr
    _make_lock_dir(lock_dir)
    start = time.monotonic()
    next_report = start
    waited_before = False
    # what is missing: "all 2 visible GPUs are held" (one wanted), "no 2 free GPUs among the 3 visible GPUs"
    short = (f"all {len(devices)} visible GPUs are held" if count == 1 else
             f"no {count} free GPUs among the {len(devices)} visible GPUs")
    while True:
        for gpu in devices:
            claim = _try_lock(gpu, lock_dir)
            if claim is not None:
                _claims.append(claim)
                if len(_claims) == count:
                    if waited_before:
                        print(f"runtime.device auto: claimed {', '.join(g.describe() for g in current_claims())} "
                              f"after waiting {time.monotonic() - start:.0f}s", file=out, flush=True)
                    return current_claims()
        release_claim()  # fewer than count: give them back and wait for enough
        waited = time.monotonic() - start
        if wait_s is not None and waited >= wait_s:
            raise ConfigError(f"runtime.device auto: {short} after waiting "
                              f"{waited:.0f}s ({_holders(devices, lock_dir)}); lower `dvc queue start -j` to the "
                              f"number of GPUs, raise {WAIT_ENV}, or set runtime.device to cuda:N (shares the GPU) "
                              f"or cpu")
        if time.monotonic() >= next_report:
            bound = "forever" if wait_s is None else f"up to {wait_s:.0f}s"
            print(f"runtime.device auto: {short}, waiting {bound} "
                  f"(waited {waited:.0f}s): {_holders(devices, lock_dir)}", file=out, flush=True)
            next_report = time.monotonic() + report_every_s
        waited_before = True
        pause = poll_s if wait_s is None else max(0.0, min(poll_s, wait_s - waited))
        time.sleep(pause)


def visible_devices_value(gpus: Sequence[GpuInfo]) -> str:
    """CUDA_VISIBLE_DEVICES for a child process that must see exactly `gpus` (indices of this process): the
    entries of this process's own CUDA_VISIBLE_DEVICES when it has one, else the indices."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    entries = [e.strip() for e in visible.split(",")] if visible else None
    return ",".join(entries[g.index] if entries and g.index < len(entries) else str(g.index) for g in gpus)


def _make_lock_dir(lock_dir: Path) -> None:
    """Creates the folder world-writable and sticky (like /tmp) so that every user of the box can lock in it."""
    if lock_dir.is_dir():
        return
    try:
        lock_dir.mkdir(parents=True)
    except FileExistsError:
        return  # another process made it first
    except OSError as exc:
        raise ConfigError(f"{LOCK_DIR_ENV}: cannot create GPU lock folder {lock_dir} ({exc.strerror})") from None
    try:
        os.chmod(lock_dir, 0o1777)
    except OSError:
        pass  # a folder we made but cannot chmod still works for this user


def _open_lock_file(path: Path) -> IO[bytes]:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except PermissionError:  # another user's file without write access: flock works on a read-only handle
        return open(path, "rb")
    try:
        if os.fstat(fd).st_uid == os.getuid():
            os.fchmod(fd, 0o666)  # the umask narrowed it; others must be able to record themselves too
    except OSError:
        pass
    return os.fdopen(fd, "r+b")


def _try_lock(gpu: GpuInfo, lock_dir: Path) -> _Claim | None:
    path = lock_dir / f"gpu-{lock_key(gpu)}.lock"
    try:
        handle = _open_lock_file(path)
    except OSError as exc:
        raise ConfigError(f"{LOCK_DIR_ENV}: cannot open GPU lock file {path} ({exc.strerror})") from None
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        handle.close()
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return None
        raise ConfigError(f"{LOCK_DIR_ENV}: cannot lock {path} ({exc.strerror})") from None
    if handle.writable():
        handle.seek(0)
        handle.truncate()
        handle.write(_holder_text(gpu).encode())
        handle.flush()
    return _Claim(gpu=gpu, lock_path=path, handle=handle)


def _holder_text(gpu: GpuInfo) -> str:
    fields = {"pid": str(os.getpid()), "host": socket.gethostname(), "cwd": os.getcwd(),
              "exp": os.environ.get("DVC_EXP_NAME", ""), "gpu": gpu.describe(),
              "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    return "".join(f"{key}={value}\n" for key, value in fields.items())


def read_holder(path: Path) -> dict[str, str]:
    """The `key=value` lines a holder wrote into a lock file ({} if none or unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def _holders(devices: Sequence[GpuInfo], lock_dir: Path) -> str:
    parts = []
    for gpu in devices:
        holder = read_holder(lock_dir / f"gpu-{lock_key(gpu)}.lock")
        who = f"pid {holder.get('pid', '?')}"
        if holder.get("exp"):
            who += f" exp {holder['exp']!r}"
        elif holder.get("cwd"):
            who += f" in {holder['cwd']}"
        if holder.get("host"):
            who += f" on {holder['host']}"
        if holder.get("since"):
            who += f" since {holder['since']}"
        parts.append(f"{gpu.describe()} held by {who}")
    return "; ".join(parts)
