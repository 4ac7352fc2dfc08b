"""EDNAS (Lee, Kim, Han): policy vectors, one logit vector per searched node (its incoming-edge combination) and
one per DAG edge (its operation), for every cell type; independent Categorical draws; REINFORCE with a
bias-corrected EMA baseline and Adam. Its settings are the search section's policy_* keys (the paper's).

On an any-subset cell (NAS-Bench-201) the same decoupling holds unchanged: node i's structure vector ranges over
the subsets of its predecessors (2, 4, 8 for NB201's nodes 1..3, the empty one included: every incoming edge
`none`), each edge's operation vector over the cell's ops without `none` (4), and log P(m) sums the chosen
subsets and the ops of the edges they select; an edge left out contributes no op term.

The policy lives on the CPU. It is a few hundred numbers, and keeping it (and its sampling generator) on the host
means sampled choices are host ints that never require reading a device tensor; it also makes the sequence of
sampled architectures identical on every device for a given seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..spaces import Architecture, SearchSpace
from .base import Strategy, check_rewards, mean_or_nan


def uniform_cell_logits(space: SearchSpace) -> torch.Tensor:
    """[n_nodes, max_combos] node logits under which (with equal op logits) every cell is equally likely: 0 in
    fixed-input spaces, (edges of the combination) * log(n_ops) in any-subset ones (0 where masked)."""
    cell = space.cell
    logits = torch.zeros(cell.n_nodes, cell.max_combos)
    if cell.any_subset:
        for k, node_combos in enumerate(cell.combos):
            logits[k, : len(node_combos)] = torch.tensor([len(c) * math.log(len(cell.ops)) for c in node_combos])
    return logits


class PolicyVectors(nn.Module):
    """node_logits[t]: [n_nodes, max_combos] (entries beyond a node's combinations are masked out);
    edge_logits[t]: [n_edges, n_ops], for each cell type t.

    The logits start at init_std * N(0, 1) around the policy under which every cell is equally likely, as the
    paper's near-zero start is in the CNN and RNN spaces (every combination there selects as many edges, so
    uniform choices are uniform cells). Where a node takes any subset of its inputs (NAS-Bench-201), a
    combination of k edges stands for n_ops^k cells, so its logit starts at k * log(n_ops): uniform choices
    would put 1/64 of the mass on each structure, favour sparse cells and start the search from a distribution
    whose mean NB201 test accuracy is 66.6% instead of the space's 87.1%."""

    def __init__(self, space: SearchSpace, init_std: float = 1e-3, generator: torch.Generator | None = None):
        super().__init__()
        self.space = space
        cell = space.cell
        mask = torch.zeros(cell.n_nodes, cell.max_combos, dtype=torch.bool)
        for k, node_combos in enumerate(cell.combos):
            mask[k, : len(node_combos)] = True
        self.register_buffer("node_mask", mask, persistent=False)
        self.node_logits = nn.ParameterDict()
        self.edge_logits = nn.ParameterDict()
        for t in space.cell_types:
            node = torch.randn(cell.n_nodes, cell.max_combos, generator=generator) * init_std + uniform_cell_logits(space)
            edge = torch.randn(cell.n_edges, len(cell.ops), generator=generator) * init_std
            self.node_logits[t] = nn.Parameter(node.masked_fill(~mask, 0.0))
            self.edge_logits[t] = nn.Parameter(edge)

    # --- distributions ---------------------------------------------------------------------------------

    def node_log_probs(self, cell_type: str) -> torch.Tensor:
        logits = self.node_logits[cell_type].masked_fill(~self.node_mask, float("-inf"))
        return torch.log_softmax(logits, dim=-1)

    def edge_log_probs(self, cell_type: str) -> torch.Tensor:
        return torch.log_softmax(self.edge_logits[cell_type], dim=-1)

    def sample(self, generator: torch.Generator) -> Architecture:
        """One architecture: a combination per node, then an op per selected edge (independent draws)."""
        arch = {}
        with torch.no_grad():
            for t in self.space.cell_types:
                combos = torch.multinomial(self.node_log_probs(t).exp(), 1, generator=generator).squeeze(1)
                ops = torch.multinomial(self.edge_log_probs(t).exp(), 1, generator=generator).squeeze(1)
                arch[t] = self.space.cell.cell_from_choices(combos.tolist(), ops.tolist())
        return arch

    def argmax(self) -> Architecture:
        """The most probable architecture: argmax combination per node, argmax op per selected edge."""
        with torch.no_grad():
            return {
                t: self.space.cell.cell_from_choices(
                    self.node_log_probs(t).argmax(-1).tolist(), self.edge_log_probs(t).argmax(-1).tolist()
                )
                for t in self.space.cell_types
            }

    def log_prob(self, arch: Architecture) -> torch.Tensor:
        """log P(m): sum of the log-softmax entries of the chosen combinations and of the selected edges' ops."""
        total = torch.zeros(())
        for t in self.space.cell_types:
            combo_idx, edge_ids, op_idx = self.space.cell.choices_of(arch[t])
            node_lp = self.node_log_probs(t)
            edge_lp = self.edge_log_probs(t)
            total = total + node_lp[torch.arange(len(combo_idx)), torch.tensor(combo_idx)].sum()
            # long: an any-subset cell may select no edge at all (an empty index list would be float)
            edges, ops = torch.tensor(edge_ids, dtype=torch.long), torch.tensor(op_idx, dtype=torch.long)
            total = total + edge_lp[edges, ops].sum()
        return total

    def entropies(self) -> dict[str, torch.Tensor]:
        """Summed entropy of the node distributions and of the edge distributions, per cell type."""
        out = {}
        for t in self.space.cell_types:
            node_lp = self.node_log_probs(t)
            # masked entries have log p = -inf: 0 * -inf is NaN in the forward and (even when discarded by a
            # where) in the backward, so multiply p by a log p with the masked entries set to 0 instead
            node_terms = node_lp.exp() * node_lp.masked_fill(~self.node_mask, 0.0)
            edge_lp = self.edge_log_probs(t)
            out[f"{t}_node"] = -node_terms.sum()
            out[f"{t}_edge"] = -(edge_lp.exp() * edge_lp).sum()
        return out

    def entropy(self) -> torch.Tensor:
        return torch.stack(list(self.entropies().values())).sum()

    def probabilities(self) -> dict[str, np.ndarray]:
        """Softmax of every policy vector, for logging: '<cell>_node' [n_nodes, max_combos] (0 where masked)
        and '<cell>_edge' [n_edges, n_ops]."""
        with torch.no_grad():
            out = {}
            for t in self.space.cell_types:
                out[f"{t}_node"] = self.node_log_probs(t).exp().numpy().copy()
                out[f"{t}_edge"] = self.edge_log_probs(t).exp().numpy().copy()
        return out


class EMABaseline:
    """Bias-corrected exponential moving average of rewards (numerator / denominator), so that the first
    values are the plain average of what was seen instead of being pulled towards 0."""

    def __init__(self, decay: float):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"baseline decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.numerator = 0.0
        self.denominator = 0.0

    @property
    def value(self) -> float:
        return self.numerator / self.denominator if self.denominator > 0 else math.nan

    def update(self, reward: float) -> None:
        self.numerator = self.decay * self.numerator + (1.0 - self.decay) * reward
        self.denominator = self.decay * self.denominator + (1.0 - self.decay)

    def state_dict(self) -> dict[str, float]:
        return {"decay": self.decay, "numerator": self.numerator, "denominator": self.denominator}

    def load_state_dict(self, state: dict[str, float]) -> None:
        self.decay, self.numerator, self.denominator = state["decay"], state["numerator"], state["denominator"]


@dataclass(frozen=True)
class EDNASSettings:
    lr: float
    betas: tuple[float, float]
    weight_decay: float
    baseline_decay: float
    entropy_weight: float
    init_std: float


class EDNASStrategy(Strategy):
    """PolicyVectors trained by REINFORCE with Adam, one step per reward.

    loss = -log P(m) * (R - b) - entropy_weight * H, where b is the baseline BEFORE this reward is added
    (so it does not depend on the sample it corrects); the first step, with no baseline yet, has advantage 0.
    """

    name = "ednas"
    distribution_title = "EDNAS policy vectors (softmax)"
    answer_title = "the policy's most probable cell"
    search_keys = ("policy_lr", "policy_beta1", "policy_beta2", "policy_weight_decay", "baseline_decay",
                   "entropy_weight", "policy_init_std")

    def __init__(self, space: SearchSpace, settings: EDNASSettings, seed: int):
        super().__init__(space, settings, seed)
        self.vectors = PolicyVectors(space, settings.init_std, torch.Generator().manual_seed(seed))
        self.optimizer = torch.optim.Adam(self.vectors.parameters(), lr=settings.lr, betas=settings.betas,
                                          weight_decay=settings.weight_decay)
        self.baseline = EMABaseline(settings.baseline_decay)
        self.steps: list[dict[str, float]] = []

    @classmethod
    def settings_from(cls, search_config: Any) -> EDNASSettings:
        c = search_config
        return EDNASSettings(lr=c.policy_lr, betas=(c.policy_beta1, c.policy_beta2),
                             weight_decay=c.policy_weight_decay, baseline_decay=c.baseline_decay,
                             entropy_weight=c.entropy_weight, init_std=c.policy_init_std)

    def begin_epoch(self, epoch: int) -> None:
        self.steps = []

    def sample(self, generator: torch.Generator) -> Architecture:
        return self.vectors.sample(generator)

    def train_architecture(self, generator: torch.Generator) -> Architecture:
        return self.sample(generator)

    def propose(self, generator: torch.Generator, limit: int) -> list[Architecture]:
        return [self.sample(generator)]

    def observe(self, archs: list[Architecture], rewards: list[float]) -> None:
        check_rewards(archs, rewards)
        for arch, reward in zip(archs, rewards):
            self.steps.append(self.learn(arch, reward))

    def learn(self, arch: Architecture, reward: float) -> dict[str, float]:
        """One REINFORCE step on one sampled architecture and its reward; returns step statistics."""
        check_rewards([arch], [reward])
        baseline = self.baseline.value
        advantage = 0.0 if math.isnan(baseline) else reward - baseline
        log_prob = self.vectors.log_prob(arch)
        loss = -log_prob * advantage
        if self.settings.entropy_weight:
            loss = loss - self.settings.entropy_weight * self.vectors.entropy()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.baseline.update(reward)
        return {"reward": reward, "advantage": advantage, "log_prob": float(log_prob.detach()),
                "policy_loss": float(loss.detach())}

    def epoch_statistics(self) -> dict[str, float]:
        return {"advantage": mean_or_nan(s["advantage"] for s in self.steps),
                "policy_loss": mean_or_nan(s["policy_loss"] for s in self.steps),
                "baseline": self.baseline.value}

    def probabilities(self) -> dict[str, np.ndarray]:
        return self.vectors.probabilities()

    def final_architecture(self) -> Architecture:
        return self.vectors.argmax()

    def derive_candidates(self, generator: torch.Generator, samples: int) -> list[Architecture]:
        return [self.vectors.sample(generator) for _ in range(samples)]

    def log_prob(self, arch: Architecture) -> float:
        with torch.no_grad():
            return float(self.vectors.log_prob(arch))

    def state_dict(self) -> dict:
        return {"vectors": self.vectors.state_dict(), "optimizer": self.optimizer.state_dict(),
                "baseline": self.baseline.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.vectors.load_state_dict(state["vectors"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.baseline.load_state_dict(state["baseline"])
