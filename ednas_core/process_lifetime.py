"""A stage ends with the process that started it (Linux: prctl PR_SET_PDEATHSIG).

`dvc queue kill --force`, or a SIGKILL of `dvc exp run` / `dvc repro`, ends DVC's process but not the stage command
it runs: the stage went on alone, reparented to init, in a temp copy that DVC then deleted, holding its GPU (and
its claim) for hours and logging to an MLflow run that nothing would close. After end_with_parent() the kernel sends
SIGTERM when the parent dies, and SIGTERM's default action ends the process at once: the last epoch's checkpoint
stays, and the next execution of the stage closes the open MLflow run as KILLED (tracking.StageRun). The stages
call it when DVC runs them; the torchrun that a stage re-launches under takes it too, and so do its ranks.

Elsewhere than on Linux it does nothing. The parent is the thread that started the process: DVC and
distributed.maybe_relaunch wait for their child in the thread that started it."""

from __future__ import annotations

import ctypes
import signal
import sys
from typing import Any, Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _libc_prctl() -> Callable[..., Any] | None:
    """libc's prctl, looked up once at import: end_with_parent also runs as a subprocess preexec_fn, between fork
    and exec, where loading a library (dlopen) may deadlock on a lock another thread of the parent held."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


_PRCTL = _libc_prctl()


def end_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Asks the kernel for `sig` when the parent process ends; False where that is not available."""
    return _PRCTL is not None and _PRCTL(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
