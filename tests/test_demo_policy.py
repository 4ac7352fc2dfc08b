"""The demos must show the policy learning: with the paper's policy learning rate the digits demo's policy vectors
stayed within 0.13-0.16 after 15 epochs (uniform is 1/7), so its heatmaps said nothing. The demo settings of
params.yaml (digits.search, markov.search) are run here as `make demo` runs them, and their final policy must be
visibly concentrated."""

from __future__ import annotations

import numpy as np
import pytest

from ednas_core.config import Params
from ednas_core.data.digits import load_digits_dataset
from ednas_core.runtime import Runtime
from ednas_core.tasks import make_search

pytestmark = pytest.mark.slow


def concentration(probabilities: dict[str, np.ndarray]) -> dict[str, float]:
    """Mean over the operation vectors of (largest probability x number of operations): 1.0 is uniform."""
    return {key: float(p.max(axis=-1).mean() * p.shape[-1]) for key, p in probabilities.items() if key.endswith("edge")}


def test_digits_demo_policy_concentrates_within_the_demo():
    params = Params()  # the defaults are params.yaml's (tests/test_config.py checks they agree)
    search = make_search("digits", load_digits_dataset(), params.digits.search, params.data,
                         Runtime.from_config(params.runtime), None, [], {})
    result = search.run()
    first, last = concentration(result.history[0].probabilities), concentration(result.history[-1].probabilities)
    for key in last:  # e.g. the most likely of 7 operations at 0.5 on average instead of 0.14
        assert last[key] > 2.5, (key, first[key], last[key])
    assert result.history[-1].metrics["entropy"] < 0.85 * result.history[0].metrics["entropy"]
