"""Seeds derived from the run seed by hashing: stable, 63 bits (what torch's manual_seed takes), and distinct
for every key. No dependencies, so that the runtime and the strategies (which config imports) can share it."""

from __future__ import annotations

import hashlib

# The largest run seed (runtime.seed). Besides seed_for (any int), the run seed reaches generators directly:
# split_indices seeds torch.Generator.manual_seed with it (which takes -2**63 .. 2**64 - 1) and DeviceLoader with
# seed * 1_000_003 + epoch (and seed + 1 for the policy loader); 2**32 - 1, the usual 32-bit seed range, keeps
# all of these far inside what manual_seed accepts. Negative seeds are refused (numpy's generators refuse them).
SEED_MAX = 2**32 - 1


def seed_for(seed: int, *keys: object) -> int:
    """A stable 63-bit seed derived from the run seed and keys such as (epoch, 'arch')."""
    digest = hashlib.sha256(repr((seed,) + keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
