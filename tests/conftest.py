"""Shared test fixtures (helpers live in helpers.py, importable from every test folder)."""

from __future__ import annotations

import pytest

from ednas_core.data import ImageDataset
from helpers import make_pattern_dataset


@pytest.fixture(scope="session")
def pattern_dataset() -> ImageDataset:
    return make_pattern_dataset()


def pytest_sessionstart(session: pytest.Session) -> None:
    """EDNAS_REQUIRE_CUDA=1 (make gpu-check): a machine without a visible GPU is an error, not a row of skips."""
    import os

    import torch

    if os.environ.get("EDNAS_REQUIRE_CUDA") == "1" and not torch.cuda.is_available():
        raise pytest.UsageError("EDNAS_REQUIRE_CUDA=1 but torch sees no CUDA device; run on a GPU machine "
                                "(or unset EDNAS_REQUIRE_CUDA)")
