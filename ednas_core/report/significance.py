"""Significance of a difference between two sets of runs (seeds of two strategies): the two-sided Mann-Whitney U
test, which assumes nothing of the results' distribution (a handful of seeds is rarely normal). Its exact form
(small samples without ties) cannot go below 2 / C(n + m, n): 0.1 with 3 seeds a side, 0.029 with 4, 0.0079 with
5; scipy is imported only when a test runs."""

from __future__ import annotations

import math
from typing import Sequence


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided Mann-Whitney U test of `a` against `b`: (U of a, p-value); scipy's automatic method (exact for
    small samples without ties, else the normal approximation with tie and continuity corrections). NaN, NaN
    when either side is empty."""
    from scipy.stats import mannwhitneyu  # scipy comes with scikit-learn

    if len(a) == 0 or len(b) == 0:
        return math.nan, math.nan
    result = mannwhitneyu(a, b, alternative="two-sided")
    return float(result.statistic), float(result.pvalue)


__all__ = ["mann_whitney"]
