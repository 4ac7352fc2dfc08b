"""Seeds derived from the run seed by hashing: stable, 63 bits (what torch's manual_seed takes), and distinct
for every key. No dependencies, so that the runtime and the strategies (which config imports) can share it."""

from __future__ import annotations

import hashlib


def seed_for(seed: int, *keys: object) -> int:
    """A stable 63-bit seed derived from the run seed and keys such as (epoch, 'arch')."""
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
