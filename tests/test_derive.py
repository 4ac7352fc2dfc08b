"""Derive: the best of N sampled architectures by their reward, the argmax architecture, and caching; derive_from
scores a given list (mode queried: the search's own look-ups, equal rewards in their order)."""

from __future__ import annotations

import pytest
import torch

from ednas_core.derive import derive, derive_from
from ednas_core.strategies.ednas import EDNASSettings, EDNASStrategy
from ednas_core.spaces import CNN_SPACE

SEP3 = CNN_SPACE.cell.ops.index("sep_conv_3x3")


def sep3_share(arch) -> float:
    ops = [op for t in CNN_SPACE.cell_types for node in arch[t] for _, op in node]
    return sum(op == SEP3 for op in ops) / len(ops)


def ednas_strategy() -> EDNASStrategy:
    settings = EDNASSettings(lr=0.01, betas=(0.5, 0.999), weight_decay=0.0, baseline_decay=0.99, entropy_weight=0.0,
                             init_std=1e-3)
    return EDNASStrategy(CNN_SPACE, settings, seed=0)


def test_best_candidate_has_the_highest_reward_and_argmax_is_reported():
    strategy = ednas_strategy()
    policy = strategy.vectors
    with torch.no_grad():
        policy.edge_logits["normal"][:, SEP3] += 1.0
    result = derive(strategy, sep3_share, samples=100, generator=torch.Generator().manual_seed(1))
    assert len(result.candidates) == 100
    assert result.best.reward == max(c.reward for c in result.candidates)
    assert result.chosen is result.best and result.mode == "best"
    assert all(op == SEP3 for node in result.argmax.architecture["normal"] for _, op in node)
    assert result.argmax.reward == sep3_share(result.argmax.architecture)
    assert result.best.genotype.to_dict()["space"] == "cnn"


def test_argmax_mode_chooses_the_most_probable_architecture():
    strategy = ednas_strategy()
    policy = strategy.vectors
    result = derive(strategy, sep3_share, samples=5, generator=torch.Generator().manual_seed(1), mode="argmax")
    assert result.chosen is result.argmax


def test_repeated_architectures_are_scored_once():
    strategy = ednas_strategy()
    policy = strategy.vectors
    with torch.no_grad():  # a near-deterministic policy samples the same architecture again and again
        for t in CNN_SPACE.cell_types:
            policy.edge_logits[t][:, 0] += 50.0
            policy.node_logits[t][:, 0] += 50.0
    calls = []
    result = derive(strategy, lambda a: calls.append(a) or 0.5, samples=20, generator=torch.Generator().manual_seed(1))
    assert result.distinct_samples == 1 and len(calls) == 1


def test_derive_from_scores_given_architectures_and_queried_mode_ranks_ties_by_order():
    """derive_from: the list of architectures derive() draws, or (mode queried) the search's own look-ups; in mode
    queried equal rewards rank in the given order, not by log-probability, so best (== chosen) is the first."""
    strategy = ednas_strategy()
    with torch.no_grad():
        strategy.vectors.edge_logits["normal"][:, SEP3] += 1.0  # the sep3-heavier architecture is more probable
    archs = strategy.derive_candidates(torch.Generator().manual_seed(1), 30)
    archs.sort(key=sep3_share)  # the least probable first among equal rewards
    calls = []
    result = derive_from(strategy, archs, lambda a: calls.append(a) or 0.5, mode="queried")
    assert [c.architecture for c in result.candidates] == archs
    assert result.mode == "queried" and result.chosen is result.best is result.ranked[0]
    assert result.best.architecture == archs[0] and [c.architecture for c in result.ranked] == archs
    assert result.argmax.architecture == strategy.final_architecture()
    best = derive_from(strategy, archs, lambda a: 0.5, mode="best")  # mode best: the more probable of equals
    assert best.best.log_prob == max(c.log_prob for c in best.candidates)
    assert len(calls) == result.distinct_samples + (strategy.final_architecture() not in archs)
    with pytest.raises(ValueError, match="no candidates"):
        derive_from(strategy, [], sep3_share, mode="queried")
