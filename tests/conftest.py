"""Shared test fixtures (helpers live in helpers.py, importable from every test folder)."""

from __future__ import annotations

import pytest

from ednas_core.data import ImageDataset
from helpers import make_pattern_dataset


@pytest.fixture(scope="session")
def pattern_dataset() -> ImageDataset:
    return make_pattern_dataset()


@pytest.fixture(autouse=True)
def _release_gpu_claim():
    """A test that resolves runtime.device auto on a GPU machine claims a GPU for its process (ednas_core.gpu_claim);
    release it after the test, or a later stage subprocess with `auto` would wait for it forever on a 1-GPU box."""
    yield
    from ednas_core import gpu_claim

    gpu_claim.release_claim()


def pytest_sessionstart(session: pytest.Session) -> None:
    """EDNAS_REQUIRE_CUDA=1 (make gpu-check): a machine without a visible GPU is an error, not a row of skips."""
    import os

    import torch

    if os.environ.get("EDNAS_REQUIRE_CUDA") == "1" and not torch.cuda.is_available():
        raise pytest.UsageError("EDNAS_REQUIRE_CUDA=1 but torch sees no CUDA device; run on a GPU machine "
                                "(or unset EDNAS_REQUIRE_CUDA)")
