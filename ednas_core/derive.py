"""Derive: take the strategy's candidates (EDNAS, ENAS, random: samples of the final distribution; EvNAS: the
final population; NAO: the top of its pool), score each with the search reward on the same validation
minibatch, keep the best; the strategy's own final architecture (EDNAS: the most probable one) is scored and
reported too. derive() draws the candidates from the strategy; derive_from() scores a given list of them (both
modes go through it; derive.mode queried of a tabular NB201 search passes the search's own look-ups,
ednas_core/tasks/nb201.py derive_queried)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .genotypes import Genotype, from_architecture
from .strategies import Strategy
from .spaces import Architecture


MODES = ("best", "argmax", "queried")  # queried: the candidates are the search's own look-ups (derive_from)


@dataclass(frozen=True)
class Candidate:
    architecture: Architecture
    genotype: Genotype
    reward: float
    log_prob: float           # under the strategy's distribution; NaN for population strategies


@dataclass(frozen=True)
class DeriveResult:
    mode: str                 # which of best / argmax is `chosen` (queried: the best of the search's look-ups)
    chosen: Candidate
    best: Candidate           # highest reward among the candidates (ties: the more probable, then the earlier one;
                              # mode queried: the earlier one)
    argmax: Candidate         # the strategy's final architecture (EDNAS: the most probable one)
    candidates: list[Candidate]

    @property
    def ranked(self) -> list[Candidate]:
        """The candidates best first: reward, then log-probability (where the strategy has one; not in mode
        queried), then order."""
        return rank(self.candidates, by_log_prob=self.mode != "queried")

    @property
    def distinct_samples(self) -> int:
        return len({c.genotype.to_json() for c in self.candidates})


def derive(strategy: Strategy, score: Callable[[Architecture], float], samples: int,
           generator: torch.Generator, mode: str = "best") -> DeriveResult:
    """`score(arch)` returns the reward of an architecture (the same batch for every call, so repeated
    architectures are scored once)."""
    if mode not in ("best", "argmax"):
        raise ValueError(f"derive mode must be best or argmax, got {mode!r}")
    return derive_from(strategy, strategy.derive_candidates(generator, samples), score, mode)


def derive_from(strategy: Strategy, archs: list[Architecture], score: Callable[[Architecture], float],
                mode: str = "best") -> DeriveResult:
    """Scores the candidates `archs` (each distinct architecture once) and the strategy's final architecture with
    `score`, and keeps the best (ranked as `rank` does; mode queried: by reward, then the order of `archs`).
    `chosen` is the best, or the final architecture in mode argmax."""
    if mode not in MODES:
        raise ValueError(f"derive mode must be one of {', '.join(MODES)}, got {mode!r}")
    if not archs:
        raise ValueError(f"strategy {strategy.name} has no candidates to derive from")
    space = strategy.space
    cache: dict[tuple, float] = {}

    def candidate(arch: Architecture) -> Candidate:
        key = space.arch_key(arch)
        if key not in cache:
            cache[key] = float(score(arch))
        return Candidate(arch, from_architecture(space, arch), cache[key], strategy.log_prob(arch))

    candidates = [candidate(arch) for arch in archs]
    best = rank(candidates, by_log_prob=mode != "queried")[0]
    argmax = candidate(strategy.final_architecture())
    return DeriveResult(mode=mode, chosen=argmax if mode == "argmax" else best, best=best, argmax=argmax,
                        candidates=candidates)


def rank(candidates: list[Candidate], by_log_prob: bool = True) -> list[Candidate]:
    """Best first: higher reward, then higher log-probability (NaN counts as 0; not with by_log_prob False),
    then earlier."""
    order = sorted(range(len(candidates)), key=lambda i: (-candidates[i].reward,
                                                          -_or_zero(candidates[i].log_prob) if by_log_prob else 0.0,
                                                          i))
    return [candidates[i] for i in order]


def _or_zero(x: float) -> float:
    return 0.0 if math.isnan(x) else x
