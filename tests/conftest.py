"""Shared test fixtures (helpers live in helpers.py, importable from every test folder)."""

from __future__ import annotations

import pytest

from ednas_core.data import ImageDataset
from helpers import make_pattern_dataset


@pytest.fixture(scope="session")
def pattern_dataset() -> ImageDataset:
    return make_pattern_dataset()
