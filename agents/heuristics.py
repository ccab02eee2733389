"""Classic and modern eviction heuristics. Each is a small scorer over legal features, or (SIEVE, Random)
a policy whose state lives in the engine and which asks the engine for its choice in step mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Policy, ScorerPolicy
from envs.sim import engine as E

if TYPE_CHECKING:
    from envs.features import DecisionView


class LRU(ScorerPolicy):
    """Least recently used."""

    name = engine_policy = "lru"

    def score(self, view: DecisionView) -> np.ndarray:
        return view.last_access


class FIFO(ScorerPolicy):
    """First in, first out (oldest admission)."""

    name = engine_policy = "fifo"

    def score(self, view: DecisionView) -> np.ndarray:
        return view.insert_time


class MRU(ScorerPolicy):
    """Most recently used (good for scans/loops larger than the cache)."""

    name = engine_policy = "mru"

    def score(self, view: DecisionView) -> np.ndarray:
        return -view.last_access


class LFU(ScorerPolicy):
    """Least frequently used since admission (ties: least recent)."""

    name = engine_policy = "lfu"

    def score(self, view: DecisionView) -> np.ndarray:
        return view.frequency


class NextUsePredictor(ScorerPolicy):
    """Predicts a tensor's next use as its last access plus its previous reuse interval — exact for strictly
    periodic access, which training steps and decode steps are — and evicts the farthest prediction. Tensors
    with no observed reuse are predicted never to return (evicted first, least recent first)."""

    name = engine_policy = "next-use"

    def score(self, view: DecisionView) -> np.ndarray:
        iv = view.reuse_interval
        predicted = np.where(iv > 0, view.last_access + iv, E.NEVER)
        return -predicted


class EngineDelegate(Policy):
    """A policy whose state (SIEVE's hand and visited bits, Random's generator) lives in the engine; in step
    mode it asks the engine for its choice, so both paths share one implementation."""

    def choose(self, view: DecisionView) -> int:
        victim = view.sim.builtin_victim()
        hits = np.flatnonzero(view.candidates == victim)
        if hits.size == 0:
            raise RuntimeError(f"{self.name}: the engine's victim {victim} is not among the {view.n} candidates")
        return int(hits[0])


class SIEVE(EngineDelegate):
    """SIEVE (Zhang et al., NSDI'24): FIFO order with a visited bit and a moving hand."""

    name = engine_policy = "sieve"


class Random(EngineDelegate):
    """Uniformly random resident tensor (seeded xorshift in the engine)."""

    name = engine_policy = "random"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "seed": self.seed}
