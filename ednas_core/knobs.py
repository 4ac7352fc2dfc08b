"""The two pieces every configuration dataclass uses: `knob` (a field whose metadata says which values it
accepts) and ConfigError (the one-line error of a bad value). Kept apart from config.py so that each strategy
file can declare its own settings dataclass without importing the whole configuration."""

from __future__ import annotations

from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A bad configuration value; the message is one line naming the key and the allowed values."""


def knob(default: Any, *, gt: float | None = None, ge: float | None = None, lt: float | None = None,
         le: float | None = None, choices: tuple | None = None) -> Any:
    meta = {k: v for k, v in dict(gt=gt, ge=ge, lt=lt, le=le, choices=choices).items() if v is not None}
    return field(default=default, metadata=meta)
