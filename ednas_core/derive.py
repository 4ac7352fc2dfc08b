"""Derive: take the strategy's candidates (EDNAS, ENAS, random: samples of the final distribution; EvNAS: the
final population; NAO: the top of its pool), score each with the search reward on the same validation
minibatch, keep the best; the strategy's own final architecture (EDNAS: the most probable one) is scored and
reported too."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .genotypes import Genotype, from_architecture
from .strategies import Strategy
from .spaces import Architecture


@dataclass(frozen=True)
class Candidate:
    architecture: Architecture
    genotype: Genotype
    reward: float
    log_prob: float           # under the strategy's distribution; NaN for population strategies


@dataclass(frozen=True)
class DeriveResult:
    mode: str                 # which of best / argmax is `chosen`
    chosen: Candidate
    best: Candidate           # highest reward among the candidates (ties: the more probable, then the earlier one)
    argmax: Candidate         # the strategy's final architecture (EDNAS: the most probable one)
    candidates: list[Candidate]

    @property
    def ranked(self) -> list[Candidate]:
        """The candidates best first: reward, then log-probability (where the strategy has one), then order."""
        return rank(self.candidates)

    @property
    def distinct_samples(self) -> int:
        return len({c.genotype.to_json() for c in self.candidates})


def derive(strategy: Strategy, score: Callable[[Architecture], float], samples: int,
           generator: torch.Generator, mode: str = "best") -> DeriveResult:
    """`score(arch)` returns the reward of an architecture (the same batch for every call, so repeated
    architectures are scored once)."""
    if mode not in ("best", "argmax"):
        raise ValueError(f"derive mode must be best or argmax, got {mode!r}")
    space = strategy.space
    cache: dict[tuple, float] = {}

    def candidate(arch: Architecture) -> Candidate:
        key = space.arch_key(arch)
        if key not in cache:
            cache[key] = float(score(arch))
        return Candidate(arch, from_architecture(space, arch), cache[key], strategy.log_prob(arch))

    archs = strategy.derive_candidates(generator, samples)
    if not archs:
        raise ValueError(f"strategy {strategy.name} has no candidates to derive from")
    candidates = [candidate(arch) for arch in archs]
    best = rank(candidates)[0]
    argmax = candidate(strategy.final_architecture())
    return DeriveResult(mode=mode, chosen=best if mode == "best" else argmax, best=best, argmax=argmax,
                        candidates=candidates)


def rank(candidates: list[Candidate]) -> list[Candidate]:
    """Best first: higher reward, then higher log-probability (NaN counts as 0), then earlier."""
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].reward,
                                                          -_or_zero(candidates[i].log_prob), i))
    return [candidates[i] for i in order]


def _or_zero(x: float) -> float:
    return 0.0 if math.isnan(x) else x
