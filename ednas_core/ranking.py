"""How well the shared weights rank architectures: rank correlations between the accuracies the weight-sharing
network predicts (the search's reward) and the true ones of a tabular benchmark (NAS-Bench-201), and a probe
that measures them on a fixed sample during the search (EDNASSearch's epoch_probe).

    kendall_tau(x, y)                      Kendall's tau-b (ties in either ranking handled)
    spearman_rho(x, y)                     Spearman's rho: Pearson correlation of average ranks (ties averaged)
    top_fraction_precision(pred, true, f)  share of the true top fraction f found in the predicted top fraction f

Own numpy code (no scipy at run time); each is NaN where it is undefined (a constant ranking).
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Callable, Sequence

import numpy as np

from .data import DeviceLoader
from .search import EpochProbe, periodic_probe
from .seeds import seed_for
from .spaces import Architecture, SearchSpace
from .strategies.base import seeded_generator, uniform_architecture

_BLOCK = 512  # rows of the pair matrix at a time in kendall_tau: memory stays O(_BLOCK * n)


def _pair(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(x, dtype=np.float64).ravel(), np.asarray(y, dtype=np.float64).ravel()
    if a.shape != b.shape or a.size < 2:
        raise ValueError(f"need two rankings of the same length >= 2, got {a.size} and {b.size} values")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("rankings must be finite (got NaN or inf)")
    return a, b


def average_ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks of x ascending; tied values share the mean of the ranks they span."""
    a = np.asarray(x, dtype=np.float64).ravel()
    order = np.argsort(a, kind="stable")
    ordered = a[order]
    starts = np.flatnonzero(np.r_[True, ordered[1:] != ordered[:-1]])  # first position of every run of ties
    ends = np.r_[starts[1:], a.size]                                      # one past its last position
    ranks = np.empty(a.size)
    ranks[order] = np.repeat((starts + ends + 1) / 2.0, ends - starts)  # mean of 1-based positions start+1..end
    return ranks


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b: (concordant - discordant) / sqrt(pairs untied in x * pairs untied in y); a pair tied in
    one ranking counts in neither numerator term. NaN when either ranking is constant."""
    a, b = _pair(x, y)
    n = a.size
    score = untied_x = untied_y = 0
    for start in range(0, n, _BLOCK):
        stop = min(n, start + _BLOCK)
        upper = np.arange(start, stop)[:, None] < np.arange(n)[None, :]  # each pair (i < j) once
        sx = np.sign(a[start:stop, None] - a[None, :]).astype(np.int8)
        sy = np.sign(b[start:stop, None] - b[None, :]).astype(np.int8)
        score += int((sx.astype(np.int64) * sy)[upper].sum())
        untied_x += int(np.count_nonzero(sx[upper]))
        untied_y += int(np.count_nonzero(sy[upper]))
    if untied_x == 0 or untied_y == 0:
        return math.nan
    return score / math.sqrt(untied_x * untied_y)


def spearman_rho(x: Sequence[float], y: Sequence[float]) -> float:
    """Spearman's rho: the Pearson correlation of the average ranks. NaN when either ranking is constant."""
    a, b = _pair(x, y)
    ra, rb = average_ranks(a), average_ranks(b)
    da, db = ra - ra.mean(), rb - rb.mean()
    denominator = math.sqrt(float(da @ da) * float(db @ db))
    return float(da @ db) / denominator if denominator > 0 else math.nan


def top_fraction_precision(predicted: Sequence[float], true: Sequence[float], fraction: float = 0.05) -> float:
    """Of the k = max(1, round(fraction * n)) best architectures by `true`, the share that are among the k best by
    `predicted` (higher is better in both). Ties at the cut are broken by position (the earlier one is in)."""
    p, t = _pair(predicted, true)
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    k = max(1, int(round(fraction * p.size)))
    top_p = np.argsort(-p, kind="stable")[:k]
    top_t = np.argsort(-t, kind="stable")[:k]
    return len(np.intersect1d(top_p, top_t)) / k


def distinct_uniform_sample(space: SearchSpace, samples: int, seed: int) -> list[Architecture]:
    """`samples` distinct architectures, drawn uniformly over the space's cells (strategies.base.
    uniform_architecture: uniform over NB201's 15,625 cells) from their own seeded generator; repeats redrawn."""
    if not 1 <= samples <= space.size:
        raise ValueError(f"can draw 1..{space.size} distinct {space.name} architectures, asked for {samples}")
    generator = seeded_generator(seed, "ranking-probe-archs")
    archs, seen = [], set()
    while len(archs) < samples:
        arch = uniform_architecture(space, generator)
        key = space.arch_key(arch)
        if key not in seen:
            seen.add(key)
            archs.append(arch)
    return archs


class RankingProbe:
    """A fixed sample of architectures with their true accuracies, scored by the shared weights on a few fixed
    validation batches (the child's reward on each, averaged); measure(child) gives the rank metrics.

    Nothing here touches the search's random streams: the sample comes from its own generator, the batches are
    made once, up front, by a loader of its own over the validation split (the child's loaders are not used),
    and child.reward is a no-grad eval-mode forward that changes no weights or statistics."""

    KEYS: tuple[str, ...] = ("rank_kendall_tau", "rank_spearman_rho", "rank_top5_precision")

    def __init__(self, space: SearchSpace, true_accuracy: Callable[[Architecture], float], batches: Sequence[Any],
                 samples: int = 200, seed: int = 0):
        """`true_accuracy(arch)`: the benchmark's accuracy of an architecture (e.g. from the NB201 table);
        `batches`: the fixed validation batches every architecture is scored on."""
        if not batches:
            raise ValueError("a ranking probe needs at least one validation batch")
        if samples < 2:
            raise ValueError(f"a ranking probe needs at least 2 architectures, got samples={samples}")
        self.space = space
        self.archs = distinct_uniform_sample(space, samples, seed)
        self.true = np.array([float(true_accuracy(a)) for a in self.archs])
        if not np.isfinite(self.true).all():
            raise ValueError("true_accuracy returned NaN or inf for some sampled architecture")
        self.batches = list(batches)

    @classmethod
    def for_child(cls, space: SearchSpace, child: Any, true_accuracy: Callable[[Architecture], float],
                  samples: int = 200, batches: int = 4, batch_size: int | None = None,
                  seed: int = 0) -> "RankingProbe":
        """A probe on `batches` batches (of the child's policy batch size unless given) of the child's validation
        split (child.valid_loader), shuffled by the probe's own seed."""
        if batches < 1:
            raise ValueError(f"a ranking probe needs batches >= 1, got {batches}")
        valid: DeviceLoader = child.valid_loader
        loader = DeviceLoader(valid.images, valid.labels, batch_size or valid.batch_size, valid.mean, valid.std,
                              seed=seed_for(seed, "ranking-probe-batches") & 0xFFFF_FFFF, shuffle=True,
                              augment=False, channels_last=valid.channels_last)
        fixed = list(itertools.islice(loader.epoch(0), batches))
        return cls(space, true_accuracy, fixed, samples=samples, seed=seed)

    def predicted(self, child: Any) -> np.ndarray:
        """Each sampled architecture's reward under the shared weights, averaged over the fixed batches."""
        return np.array([np.mean([child.reward(arch, batch) for batch in self.batches]) for arch in self.archs])

    def measure(self, child: Any) -> dict[str, float]:
        predicted = self.predicted(child)
        return {"rank_kendall_tau": kendall_tau(predicted, self.true),
                "rank_spearman_rho": spearman_rho(predicted, self.true),
                "rank_top5_precision": top_fraction_precision(predicted, self.true, 0.05)}

    def every(self, child: Any, every: int, epochs: int) -> EpochProbe:
        """EDNASSearch's epoch_probe: measure(child) every `every` epochs and at the last, NaN otherwise."""
        return periodic_probe(lambda: self.measure(child), self.KEYS, every, epochs)
