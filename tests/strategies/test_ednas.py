"""EDNAS's strategy: policy vectors, sampling, log-probabilities, entropies, the EMA baseline and REINFORCE
(EDNAS_SPEC.md s.3), with regression tests for the authors' double softmax and hard-coded seed (s.8); and the
random baseline that never learns."""

import copy
import math
from collections import Counter

import numpy as np
import pytest
import torch

from ednas_core.strategies import STRATEGIES
from ednas_core.strategies.ednas import EDNASSettings, EDNASStrategy, EMABaseline, PolicyVectors
from ednas_core.strategies.random import RandomSettings, RandomStrategy
from ednas_core.spaces import CNN_SPACE, RNN_SPACE

CELL = CNN_SPACE.cell
SEP = CELL.ops.index("sep_conv_3x3")


def _set_logits(vectors, seed=0, scale=1.5):
    """Known non-uniform logits (masked node entries stay 0)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in vectors.space.cell_types:
            node = torch.randn(vectors.node_logits[t].shape, generator=g) * scale
            vectors.node_logits[t].copy_(node.masked_fill(~vectors.node_mask, 0.0))
            vectors.edge_logits[t].copy_(torch.randn(vectors.edge_logits[t].shape, generator=g) * scale)


def _softmax(xs):
    m = max(xs)
    e = [math.exp(x - m) for x in xs]
    s = sum(e)
    return [v / s for v in e]


def _log_softmax(xs, k):
    m = max(xs)
    return xs[k] - m - math.log(sum(math.exp(x - m) for x in xs))


def _policy(space=CNN_SPACE, seed=0, **overrides):
    kwargs = dict(lr=0.05, betas=(0.5, 0.999), weight_decay=0.0, baseline_decay=0.9, entropy_weight=0.0,
                  init_std=1e-3)
    kwargs.update(overrides)
    return EDNASStrategy(space, EDNASSettings(**kwargs), seed)


# --- distributions --------------------------------------------------------------------------------------


def test_probabilities_rows_sum_to_one_and_masked_entries_are_zero():
    v = PolicyVectors(CNN_SPACE)
    _set_logits(v)
    probs = v.probabilities()
    assert set(probs) == {"normal_node", "normal_edge", "reduce_node", "reduce_edge"}
    for t in CNN_SPACE.cell_types:
        node = probs[f"{t}_node"]
        assert node.shape == (4, 10)
        for k, node_combos in enumerate(CELL.combos):
            n = len(node_combos)
            assert node[k, :n].sum() == pytest.approx(1.0, abs=1e-6)
            assert np.all(node[k, n:] == 0.0)
            assert np.all(node[k, :n] > 0.0)
        edge = probs[f"{t}_edge"]
        assert edge.shape == (14, 7)
        np.testing.assert_allclose(edge.sum(-1), 1.0, atol=1e-6)


def test_initial_policy_is_near_uniform():
    v = PolicyVectors(CNN_SPACE, generator=torch.Generator().manual_seed(3))
    for t in CNN_SPACE.cell_types:
        logits = v.node_logits[t].detach()[v.node_mask]
        assert 0 < logits.abs().max() < 1e-2  # 1e-3 * N(0,1), not exactly zero
        assert float(v.edge_logits[t].detach().std()) == pytest.approx(1e-3, rel=0.3)
    probs = v.probabilities()
    for t in CNN_SPACE.cell_types:
        for k, node_combos in enumerate(CELL.combos):
            n = len(node_combos)
            np.testing.assert_allclose(probs[f"{t}_node"][k, :n], 1.0 / n, atol=1e-2 / n)
        np.testing.assert_allclose(probs[f"{t}_edge"], 1.0 / 7, atol=2e-3)


def test_vectors_are_parameters_of_the_right_shapes():
    v = PolicyVectors(CNN_SPACE)
    names = {n: p.shape for n, p in v.named_parameters()}
    assert names == {"node_logits.normal": (4, 10), "node_logits.reduce": (4, 10),
                     "edge_logits.normal": (14, 7), "edge_logits.reduce": (14, 7)}
    r = PolicyVectors(RNN_SPACE)
    assert dict((n, p.shape) for n, p in r.named_parameters()) == {
        "node_logits.recurrent": (8, 8), "edge_logits.recurrent": (36, 4)}


# --- log-probability ---------------------------------------------------------------------------------------


def _hand_log_prob(vectors, arch, before=lambda logits: logits):
    """Sum over nodes and SELECTED edges of log-softmax(before(logits))[chosen], in plain Python.
    before=_softmax reproduces the authors' defect (cross-entropy of an already-softmaxed vector)."""
    total = 0.0
    for t in vectors.space.cell_types:
        node_logits = vectors.node_logits[t].detach().tolist()
        edge_logits = vectors.edge_logits[t].detach().tolist()
        for k, (node, pairs) in enumerate(zip(CELL.node_ids, arch[t])):
            valid = node_logits[k][: len(CELL.combos[k])]
            combo = CELL.combos[k].index(tuple(p for p, _ in pairs))
            total += _log_softmax(before(valid), combo)
            for pred, op in pairs:  # selected edges only
                total += _log_softmax(before(edge_logits[CELL.edge_id(node, pred)]), op)
    return total


def test_log_prob_matches_hand_computation_and_is_not_a_double_softmax():
    v = PolicyVectors(CNN_SPACE)
    _set_logits(v, seed=1)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        arch = v.sample(g)
        hand = _hand_log_prob(v, arch)
        got = v.log_prob(arch).item()
        assert got == pytest.approx(hand, abs=1e-6 * max(1.0, abs(hand)))
        assert abs(got - _hand_log_prob(v, arch, before=_softmax)) > 1e-2


def test_log_prob_ignores_unselected_edges():
    v = PolicyVectors(CNN_SPACE)
    _set_logits(v, seed=2)
    arch = v.sample(torch.Generator().manual_seed(1))
    before = v.log_prob(arch).item()
    _, selected, _ = CELL.choices_of(arch["normal"])
    unselected = [e for e in range(CELL.n_edges) if e not in selected]
    assert unselected
    with torch.no_grad():
        v.edge_logits["normal"][unselected] = torch.randn(len(unselected), 7) * 5
    assert v.log_prob(arch).item() == pytest.approx(before, abs=1e-6)
    # and the gradient reaches only selected edges
    v.zero_grad()
    v.log_prob(arch).backward()
    grad = v.edge_logits["normal"].grad
    assert torch.all(grad[unselected] == 0)
    assert torch.all(grad[selected].abs().sum(-1) > 0)


def test_uniform_log_prob_is_minus_log_space_size():
    v = PolicyVectors(CNN_SPACE, init_std=0.0)
    arch = v.sample(torch.Generator().manual_seed(0))
    assert v.log_prob(arch).item() == pytest.approx(-math.log(CNN_SPACE.size), rel=1e-6)


# --- sampling --------------------------------------------------------------------------------------------


def test_sample_is_a_valid_architecture():
    for space in (CNN_SPACE, RNN_SPACE):
        v = PolicyVectors(space)
        _set_logits(v)
        g = torch.Generator().manual_seed(5)
        for _ in range(50):
            arch = v.sample(g)
            assert space.validate(arch) == arch
            assert all(isinstance(x, int) for t in arch for node in arch[t] for pair in node for x in pair)


def test_sampling_frequencies_match_softmax():
    v = PolicyVectors(CNN_SPACE)
    _set_logits(v, seed=4, scale=0.8)
    probs = v.probabilities()
    g = torch.Generator().manual_seed(11)
    n = 4000
    combo_counts = {t: [Counter() for _ in CELL.node_ids] for t in CNN_SPACE.cell_types}
    op_counts = {t: [Counter() for _ in range(CELL.n_edges)] for t in CNN_SPACE.cell_types}
    for _ in range(n):
        arch = v.sample(g)
        for t in CNN_SPACE.cell_types:
            combos, edge_ids, ops = CELL.choices_of(arch[t])
            for k, c in enumerate(combos):
                combo_counts[t][k][c] += 1
            for e, o in zip(edge_ids, ops):
                op_counts[t][e][o] += 1
    checked = 0
    for t in CNN_SPACE.cell_types:
        for k, node_combos in enumerate(CELL.combos):
            freq = np.array([combo_counts[t][k][c] / n for c in range(len(node_combos))])
            np.testing.assert_allclose(freq, probs[f"{t}_node"][k, : len(node_combos)], atol=0.03)
        for e in range(CELL.n_edges):
            seen = sum(op_counts[t][e].values())
            if seen < 1500:  # op frequencies are conditional on the edge being selected
                continue
            freq = np.array([op_counts[t][e][o] / seen for o in range(7)])
            np.testing.assert_allclose(freq, probs[f"{t}_edge"][e], atol=0.03)
            checked += 1
    assert checked >= 8  # at least the always-selected edges of node 2 in both cells, and more


def test_same_seeded_generator_gives_same_architectures_and_seeds_differ():
    v = PolicyVectors(CNN_SPACE, generator=torch.Generator().manual_seed(0))
    a = [v.sample(torch.Generator().manual_seed(7)) for _ in range(2)]
    assert a[0] == a[1]
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert [v.sample(g1) for _ in range(5)] == [v.sample(g2) for _ in range(5)]
    # no hard-coded seed: different generators (and successive draws) give different architectures
    keys = {CNN_SPACE.arch_key(v.sample(torch.Generator().manual_seed(s))) for s in range(10)}
    assert len(keys) == 10
    g = torch.Generator().manual_seed(7)
    assert len({CNN_SPACE.arch_key(v.sample(g)) for _ in range(10)}) == 10


def test_argmax_picks_most_probable_entries():
    v = PolicyVectors(CNN_SPACE)
    _set_logits(v, seed=6)
    arch = v.argmax()
    probs = v.probabilities()
    for t in CNN_SPACE.cell_types:
        combos, edge_ids, ops = CELL.choices_of(arch[t])
        assert combos == probs[f"{t}_node"].argmax(-1).tolist()
        assert ops == [int(probs[f"{t}_edge"][e].argmax()) for e in edge_ids]


# --- entropies --------------------------------------------------------------------------------------------


def test_entropies_uniform_and_one_hot():
    v = PolicyVectors(CNN_SPACE, init_std=0.0)
    ent = v.entropies()
    node_uniform = sum(math.log(math.comb(i, 2)) for i in CELL.node_ids)
    for t in CNN_SPACE.cell_types:
        assert ent[f"{t}_node"].item() == pytest.approx(node_uniform, rel=1e-6)
        assert ent[f"{t}_edge"].item() == pytest.approx(14 * math.log(7), rel=1e-6)
    assert v.entropy().item() == pytest.approx(2 * (node_uniform + 14 * math.log(7)), rel=1e-6)

    with torch.no_grad():
        for t in CNN_SPACE.cell_types:
            v.node_logits[t][:, 0] += 50.0
            v.edge_logits[t][:, 3] += 50.0
    for value in v.entropies().values():
        assert abs(value.item()) < 1e-6


def test_entropy_gradient_is_finite():
    """Masked node entries (log p = -inf) must not poison the entropy bonus gradient with NaN."""
    v = PolicyVectors(CNN_SPACE)
    _set_logits(v)
    v.entropy().backward()
    for p in v.parameters():
        assert torch.isfinite(p.grad).all()
    assert torch.all(v.node_logits["normal"].grad[~v.node_mask] == 0)


def test_entropy_bonus_raises_entropy_and_keeps_the_policy_finite():
    p = _policy(entropy_weight=1.0)
    _set_logits(p.vectors, scale=2.0)
    before = p.vectors.entropy().item()
    g = torch.Generator().manual_seed(0)
    for _ in range(20):
        p.learn(p.sample(g), 0.5)  # constant reward: zero advantage after step 1, only the bonus acts
    assert all(torch.isfinite(q).all() for q in p.vectors.parameters())
    assert p.vectors.entropy().item() > before


# --- EMA baseline -----------------------------------------------------------------------------------------


def test_ema_baseline_is_bias_corrected():
    b = EMABaseline(0.9)
    assert math.isnan(b.value)
    rewards = [0.3, 0.8, 0.1, 0.55, 0.9, 0.2]
    for n, r in enumerate(rewards, start=1):
        b.update(r)
        if n == 1:
            assert b.value == pytest.approx(0.3, abs=1e-12)
        num = sum(0.9 ** (n - k) * 0.1 * rewards[k - 1] for k in range(1, n + 1))
        den = sum(0.9 ** (n - k) * 0.1 for k in range(1, n + 1))
        assert b.value == pytest.approx(num / den, abs=1e-12)
    c = EMABaseline(0.5)
    c.load_state_dict(b.state_dict())
    assert c.value == b.value and c.decay == 0.9


def test_ema_baseline_rejects_bad_decay():
    for d in (-0.1, 1.0, 1.5):
        with pytest.raises(ValueError, match="decay"):
            EMABaseline(d)


# --- REINFORCE ----------------------------------------------------------------------------------------


def test_learn_first_advantage_zero_then_reward_above_baseline_raises_log_prob():
    p = _policy(lr=0.01)
    g = torch.Generator().manual_seed(0)
    arch = p.sample(g)
    before = [t.detach().clone() for t in p.vectors.parameters()]
    stats = p.learn(arch, 0.4)
    assert stats["advantage"] == 0.0
    assert p.baseline.value == pytest.approx(0.4)
    for a, b in zip(before, p.vectors.parameters()):  # zero advantage: no policy-gradient step
        assert torch.equal(a, b.detach())

    arch2 = p.sample(g)
    lp_before = p.vectors.log_prob(arch2).item()
    stats = p.learn(arch2, 0.9)
    assert stats["advantage"] == pytest.approx(0.5)
    assert stats["log_prob"] == pytest.approx(lp_before)
    assert stats["policy_loss"] == pytest.approx(-lp_before * 0.5, rel=1e-6)
    assert p.vectors.log_prob(arch2).item() > lp_before

    arch3 = p.sample(g)
    lp3 = p.vectors.log_prob(arch3).item()
    stats = p.learn(arch3, 0.0)  # below the baseline: less likely afterwards
    assert stats["advantage"] < 0
    assert p.vectors.log_prob(arch3).item() < lp3


@pytest.mark.parametrize("reward", [math.nan, math.inf, -math.inf])
def test_learn_rejects_non_finite_reward(reward):
    for policy in (_policy(), RandomStrategy(CNN_SPACE, RandomSettings(baseline_decay=0.9), 0)):
        arch = policy.propose(torch.Generator().manual_seed(0), 1)[0]
        with pytest.raises(FloatingPointError):
            policy.observe([arch], [reward])


def _sep_share(arch):
    ops = [op for t in ("normal", "reduce") for node in arch[t] for _, op in node]
    assert len(ops) == 16
    return sum(op == SEP for op in ops) / 16


def test_planted_operation_reward_is_learned():
    p = _policy(seed=0)
    g = torch.Generator().manual_seed(0)
    start = p.vectors.probabilities()
    assert start["normal_edge"][:, SEP].mean() == pytest.approx(1 / 7, abs=0.01)
    for _ in range(300):
        arch = p.sample(g)
        p.learn(arch, _sep_share(arch))
    probs = p.vectors.probabilities()
    mean = np.concatenate([probs["normal_edge"][:, SEP], probs["reduce_edge"][:, SEP]]).mean()
    assert mean > 0.6
    final = p.final_architecture()
    assert _sep_share(final) == 1.0


def test_planted_structure_reward_is_learned():
    p = _policy(seed=0)
    g = torch.Generator().manual_seed(0)
    assert p.vectors.probabilities()["normal_node"][3, 0] == pytest.approx(0.1, abs=0.01)
    for _ in range(300):
        arch = p.sample(g)
        preds = tuple(q for q, _ in arch["normal"][3])  # node 5 of the normal cell
        p.learn(arch, float(preds == (0, 1)))
    probs = p.vectors.probabilities()
    assert CELL.combos[3][0] == (0, 1)
    assert probs["normal_node"][3, 0] > 0.8
    assert p.final_architecture()["normal"][3][0][0] == 0 and p.final_architecture()["normal"][3][1][0] == 1


def test_state_dict_round_trip_gives_identical_samples_and_updates():
    p = _policy(seed=1)
    g = torch.Generator().manual_seed(1)
    for k in range(5):
        p.learn(p.sample(g), 0.1 * k)
    state = copy.deepcopy(p.state_dict())

    q = _policy(seed=99)
    q.load_state_dict(state)
    assert q.baseline.value == p.baseline.value
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    for k in range(5):
        a1, a2 = p.sample(g1), q.sample(g2)
        assert a1 == a2
        s1, s2 = p.learn(a1, 0.2 * k), q.learn(a2, 0.2 * k)
        assert s1 == s2
    for x, y in zip(p.vectors.parameters(), q.vectors.parameters()):
        assert torch.equal(x, y)


def test_seed_controls_initial_vectors():
    a, b, c = _policy(seed=1), _policy(seed=1), _policy(seed=2)
    for x, y, z in zip(a.vectors.parameters(), b.vectors.parameters(), c.vectors.parameters()):
        assert torch.equal(x, y)
        assert not torch.equal(x, z)


def test_random_strategy_is_uniform_and_never_learns():
    p = RandomStrategy(CNN_SPACE, RandomSettings(baseline_decay=0.9), 0)
    g = torch.Generator().manual_seed(0)
    for k in range(20):
        archs = p.propose(g, 5)
        assert len(archs) == 1
        p.observe(archs, [float(k % 3)])
    probs = p.probabilities()
    np.testing.assert_allclose(probs["normal_edge"], 1 / 7, atol=1e-7)
    np.testing.assert_allclose(probs["reduce_node"][3], 1 / 10, atol=1e-7)
    assert p.log_prob(p.final_architecture()) == pytest.approx(-math.log(CNN_SPACE.size), rel=1e-6)
    assert not math.isnan(p.epoch_statistics()["baseline"])
    assert set(STRATEGIES) >= {"ednas", "random"}
    assert STRATEGIES["ednas"] is EDNASStrategy and STRATEGIES["random"] is RandomStrategy
