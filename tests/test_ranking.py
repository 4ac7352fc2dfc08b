"""Rank metrics against hand-computed cases (ties included) and scipy.stats, and the ranking probe: a fixed
distinct uniform sample, fixed batches, the search's random streams untouched, NaN between its epochs."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from helpers import cpu_runtime, tiny_search_config
from ednas_core.child_nb201 import NB201Child
from ednas_core.config import DataConfig
from ednas_core.ranking import (RankingProbe, average_ranks, distinct_uniform_sample, kendall_tau, spearman_rho,
                                top_fraction_precision)
from ednas_core.spaces import NB201_SPACE

CELL = NB201_SPACE.cell


def test_hand_computed_example_with_ties():
    """x = [1, 2, 2, 3], y = [1, 3, 2, 2]. The six pairs (i, j):
        (0,1) x+ y+ concordant   (0,2) x+ y+ concordant   (0,3) x+ y+ concordant
        (1,2) tied in x only     (1,3) x+ y- discordant   (2,3) tied in y only
    tau-b = (C - D) / sqrt(pairs untied in x * pairs untied in y) = (3 - 1) / sqrt(5 * 5) = 0.4.
    Average ranks: x -> [1, 2.5, 2.5, 4], y -> [1, 4, 2.5, 2.5]; centred (mean 2.5): [-1.5, 0, 0, 1.5] and
    [-1.5, 1.5, 0, 0]; rho = 2.25 / sqrt(4.5 * 4.5) = 0.5."""
    x, y = [1, 2, 2, 3], [1, 3, 2, 2]
    np.testing.assert_array_equal(average_ranks(x), [1, 2.5, 2.5, 4])
    np.testing.assert_array_equal(average_ranks(y), [1, 4, 2.5, 2.5])
    assert kendall_tau(x, y) == pytest.approx(0.4, abs=1e-12)
    assert spearman_rho(x, y) == pytest.approx(0.5, abs=1e-12)


def test_average_ranks_of_a_three_way_tie():
    np.testing.assert_array_equal(average_ranks([10, 20, 20, 30, 20]), [1, 3, 3, 5, 3])


def test_perfect_reversed_and_constant_rankings():
    x = [0.1, 0.5, 0.3, 0.9]
    assert kendall_tau(x, x) == pytest.approx(1.0) and spearman_rho(x, x) == pytest.approx(1.0)
    assert kendall_tau(x, [-v for v in x]) == pytest.approx(-1.0)
    assert spearman_rho(x, [-v for v in x]) == pytest.approx(-1.0)
    assert math.isnan(kendall_tau(x, [2, 2, 2, 2])) and math.isnan(spearman_rho([2, 2, 2, 2], x))


def test_top_fraction_precision_hand_computed():
    predicted = [0.9, 0.1, 0.8, 0.3, 0.7, 0.2, 0.6, 0.5, 0.4, 0.0]  # top 3: items 0, 2, 4
    true = [0.1, 0.9, 0.8, 0.2, 0.7, 0.3, 0.6, 0.0, 0.5, 0.4]       # top 3: items 1, 2, 4
    assert top_fraction_precision(predicted, true, 0.3) == pytest.approx(2 / 3)
    assert top_fraction_precision(predicted, true, 0.05) == 0.0     # k = max(1, round(0.5)) = 1: item 0 vs 1
    assert top_fraction_precision(true, true, 0.3) == 1.0
    assert top_fraction_precision(predicted, true, 1.0) == 1.0
    # ties at the cut go to the earlier position: predicted top 1 of [1, 1, 0] is item 0
    assert top_fraction_precision([1, 1, 0], [0, 1, 0], 0.34) == 0.0
    assert top_fraction_precision([1, 1, 0], [1, 0, 0], 0.34) == 1.0


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="same length"):
        kendall_tau([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="same length"):
        spearman_rho([1], [1])
    with pytest.raises(ValueError, match="finite"):
        kendall_tau([1, float("nan")], [1, 2])
    with pytest.raises(ValueError, match="fraction"):
        top_fraction_precision([1, 2], [1, 2], 0.0)


@pytest.mark.parametrize("n, levels", [(2, 2), (7, 3), (50, 5), (200, 1000), (1200, 20)])
def test_agrees_with_scipy(n, levels):
    stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(n)
    for _ in range(5):
        x, y = rng.integers(0, levels, n), rng.integers(0, levels, n) + 0.5 * rng.integers(0, levels, n)
        if len(set(x)) < 2 or len(set(y)) < 2:
            continue
        assert kendall_tau(x, y) == pytest.approx(stats.kendalltau(x, y).statistic, abs=1e-12)
        assert spearman_rho(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
        np.testing.assert_allclose(average_ranks(x), stats.rankdata(x))


def test_distinct_uniform_sample_is_seeded_distinct_and_leaves_global_rng_alone():
    state = torch.get_rng_state()
    a = distinct_uniform_sample(NB201_SPACE, 200, seed=3)
    assert torch.equal(state, torch.get_rng_state())
    assert a == distinct_uniform_sample(NB201_SPACE, 200, seed=3) != distinct_uniform_sample(NB201_SPACE, 200, seed=4)
    assert len({NB201_SPACE.arch_key(arch) for arch in a}) == 200
    # roughly uniform over cells: every edge is absent (code 0) or each op about 1/5 of the time
    codes = np.array([CELL.edge_codes(arch["cell"]) for arch in distinct_uniform_sample(NB201_SPACE, 3000, seed=0)])
    for code in range(5):
        assert 0.16 < (codes == code).mean() < 0.24
    with pytest.raises(ValueError, match="15625"):
        distinct_uniform_sample(NB201_SPACE, 15626, seed=0)


def _true_accuracy(arch):
    """A made-up benchmark table: more and bigger convolutions are better (many ties)."""
    return float(sum(CELL.edge_codes(arch["cell"])))


class TableChild:
    """A child whose reward is the table's accuracy plus a per-batch offset (or its negative)."""

    def __init__(self, sign=1.0):
        self.sign, self.calls = sign, []

    def reward(self, arch, batch):
        self.calls.append(batch)
        return self.sign * _true_accuracy(arch) + batch


def test_probe_measures_the_ranking_of_the_shared_weights():
    probe = RankingProbe(NB201_SPACE, _true_accuracy, batches=[0.0, 1.0, 2.0], samples=40, seed=1)
    child = TableChild()
    assert probe.measure(child) == {"rank_kendall_tau": pytest.approx(1.0), "rank_spearman_rho": pytest.approx(1.0),
                                    "rank_top5_precision": 1.0}
    assert child.calls == [0.0, 1.0, 2.0] * 40  # every sample on every fixed batch
    reversed_ = probe.measure(TableChild(sign=-1.0))
    assert reversed_["rank_kendall_tau"] == pytest.approx(-1.0) and reversed_["rank_spearman_rho"] == pytest.approx(-1.0)
    assert set(probe.measure(child)) == set(RankingProbe.KEYS)


def test_probe_every_n_epochs_and_at_the_last_nan_otherwise():
    probe = RankingProbe(NB201_SPACE, _true_accuracy, batches=[0.0], samples=10)
    child = TableChild()
    every = probe.every(child, every=3, epochs=7)
    ran = [not math.isnan(every(e)["rank_kendall_tau"]) for e in range(7)]
    assert ran == [False, False, True, False, False, True, True]
    assert all(set(every(e)) == set(RankingProbe.KEYS) for e in range(7))
    with pytest.raises(ValueError, match="every"):
        probe.every(child, every=0, epochs=3)


def test_probe_for_child_uses_its_own_fixed_validation_batches(pattern_dataset):
    child = NB201Child.build(pattern_dataset, tiny_search_config(layers=2), DataConfig(), cpu_runtime())
    torch.manual_seed(123)
    state = torch.get_rng_state()
    probe = RankingProbe.for_child(NB201_SPACE, child, _true_accuracy, samples=8, batches=2, batch_size=16, seed=5)
    assert len(probe.batches) == 2 and all(b[0].shape == (16, 3, 8, 8) for b in probe.batches)
    valid = child.valid_loader
    valid_images = {tuple(img.flatten().tolist()) for img in valid.images}
    # the batches are normalised validation images (not training ones), and the same on every build
    again = RankingProbe.for_child(NB201_SPACE, child, _true_accuracy, samples=8, batches=2, batch_size=16, seed=5)
    for (xa, ya), (xb, yb) in zip(probe.batches, again.batches):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
        raw = (xa * valid.std[:, None, None] + valid.mean[:, None, None]).mul(255).round().to(torch.uint8)
        assert all(tuple(img.flatten().tolist()) in valid_images for img in raw)
    before = {k: v.clone() for k, v in child.net.state_dict().items()}
    m = probe.measure(child)
    assert torch.equal(state, torch.get_rng_state())  # neither the sample, the batches nor the scoring draw
    assert all(torch.equal(before[k], v) for k, v in child.net.state_dict().items())  # BN statistics untouched
    assert all(-1.0 <= m[k] <= 1.0 or math.isnan(m[k]) for k in ("rank_kendall_tau", "rank_spearman_rho"))
    assert 0.0 <= m["rank_top5_precision"] <= 1.0
