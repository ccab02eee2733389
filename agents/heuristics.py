"""Classic and modern eviction heuristics. Each is a small scorer over legal features, or (SIEVE, Random)
a policy whose state lives in the engine and which asks the engine for its choice in step mode."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Policy, ScorerPolicy
from envs.gym.schedule import PREDICTOR_VERSION, CompiledSchedule, preference
from envs.sim import engine as E

if TYPE_CHECKING:
    from envs.gym.features import DecisionView
    from envs.sim.oracle import Oracle


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


class ScheduleAware(Policy):
    """Schedule-aware and cost-aware (legal): every evictable tensor is a candidate; each one's next use is
    predicted from the previous iteration lined up phase by phase (:mod:`envs.gym.schedule`), and the candidate
    whose eviction costs the fewest bytes per byte of room and access it frees goes first: cost = its bytes if it
    is dirty (a write-back) plus its bytes if its next use is a READ (a read-back); room = bytes x predicted
    accesses until that use. Ties: the farthest predicted use, then the least recently used."""

    name = "schedule"
    uses_schedule = True
    compiled = CompiledSchedule

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "predictor_version": PREDICTOR_VERSION}

    def choose(self, view: DecisionView) -> int:
        dist = view.schedule_distance
        if dist is None:
            raise RuntimeError("schedule runs in an episode that offers schedule predictions (schedule=True)")
        return int(preference(dist, view.schedule_next_read, view.dirty, view.last_access, view.candidates)[0])


class EngineDelegate(Policy):
    """A policy whose state (SIEVE's hand and visited bits, Random's generator) lives in the engine; in step
    mode it takes the engine's choice from the view, so both paths share one implementation."""

    uses_engine_choice = True

    def choose(self, view: DecisionView) -> int:
        if view.engine_choice is None:
            raise RuntimeError(f"{self.name} runs only in an episode whose engine policy is {self.engine_policy!r}")
        return view.engine_choice


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


class Belady(ScorerPolicy):
    """Belady's MIN, the offline reference: evicts the candidate whose next use is farthest (never-used-again
    first). It reads the future through the episode's :class:`~envs.sim.oracle.Oracle`, so it is not legal."""

    name = engine_policy = "belady"
    uses_oracle = True

    def __init__(self, oracle: Oracle | None = None) -> None:
        self.oracle = oracle

    def attach_oracle(self, oracle: Oracle) -> None:
        self.oracle = oracle

    def score(self, view: DecisionView) -> np.ndarray:
        if self.oracle is None:
            raise RuntimeError("belady needs the oracle of its episode (attach_oracle)")
        return -self.oracle.next_use(view.candidates)
