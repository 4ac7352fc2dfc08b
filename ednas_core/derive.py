"""Derive: sample architectures from the final policy, score each with the search reward on the same
validation minibatch, keep the best; the most probable (argmax) architecture is scored and reported too."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .genotypes import Genotype, from_architecture
from .policy import PolicyVectors
from .spaces import Architecture


@dataclass(frozen=True)
class Candidate:
    architecture: Architecture
    genotype: Genotype
    reward: float
    log_prob: float


@dataclass(frozen=True)
class DeriveResult:
    mode: str                 # which of best / argmax is `chosen`
    chosen: Candidate
    best: Candidate           # highest reward among the samples (ties: the more probable one)
    argmax: Candidate         # the policy's most probable architecture
    candidates: list[Candidate]

    @property
    def distinct_samples(self) -> int:
        return len({c.genotype.to_json() for c in self.candidates})


def derive(policy: PolicyVectors, score: Callable[[Architecture], float], samples: int,
           generator: torch.Generator, mode: str = "best") -> DeriveResult:
    """`score(arch)` returns the reward of an architecture (the same batch for every call, so repeated
    architectures are scored once)."""
    if mode not in ("best", "argmax"):
        raise ValueError(f"derive mode must be best or argmax, got {mode!r}")
    space = policy.space
    cache: dict[tuple, float] = {}

    def candidate(arch: Architecture) -> Candidate:
        key = space.arch_key(arch)
        if key not in cache:
            cache[key] = float(score(arch))
        with torch.no_grad():
            log_prob = float(policy.log_prob(arch))
        return Candidate(arch, from_architecture(space, arch), cache[key], log_prob)

    candidates = [candidate(policy.sample(generator)) for _ in range(samples)]
    best = max(candidates, key=lambda c: (c.reward, c.log_prob))
    argmax = candidate(policy.argmax())
    return DeriveResult(mode=mode, chosen=best if mode == "best" else argmax, best=best, argmax=argmax,
                        candidates=candidates)
