"""The policy interface shared by every agent.

A decision is a sealed :class:`~envs.gym.features.DecisionView`: the eviction candidates (resident, evictable
tensors) with their past-only features and the global state. A :class:`Policy` returns the index of the
candidate to evict. Most policies are *scorers*
(Parrot's split): :class:`ScorerPolicy` rates candidates (lower = evict first) and evicts the lowest score, ties
broken by least recent access, then by tensor id. Policies with a compiled twin in the engine name it in
``engine_policy`` so whole-trace runs use the fast path; both paths give identical numbers (tested).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from envs.gym.features import DecisionView
    from envs.sim.oracle import Oracle


class Policy(ABC):
    """Chooses a victim among the candidates of a decision."""

    #: Registry name (``lru``, ``belady``, ...).
    name: str = "policy"
    #: Name of the engine's compiled equivalent, or None.
    engine_policy: str | None = None
    #: Whether the policy reads the future through an oracle (only Belady).
    uses_oracle: bool = False
    #: Whether the policy plays the engine's own choice (its state lives in the engine: SIEVE, Random).
    uses_engine_choice: bool = False
    #: Whether the policy reads the schedule-aware predictions of its views (``DecisionView.schedule_distance``).
    uses_schedule: bool = False
    #: A compiled twin that plays this policy's every decision without Python (built per prepared trace, with
    #: ``play(simulation, stop) -> decisions``; :class:`envs.gym.schedule.CompiledSchedule`), or None. Whole runs
    #: and timelines use it; both paths give identical numbers (tested).
    compiled: Any = None
    #: The observation version the policy reads (:data:`envs.gym.features.OBSERVATION_VERSIONS`).
    observation_version: int = 1
    #: Candidates per decision the policy was built for (None = every evictable tensor) and their rule.
    candidate_k: int | None = None
    candidate_rule: str = "lru"
    #: Whether :meth:`choose_batch` is cheaper than repeated :meth:`choose` (the leaderboard then runs all
    #: traces of a split in lockstep).
    batched: bool = False
    #: Whether the policy decides from observations alone (:meth:`choose_observations`); lockstep runs then
    #: take the env's fused step, which writes each decision's observation without building its view.
    observation_batched: bool = False

    def reset(self, seed: int | None = None) -> None:  # noqa: B027 - optional hook
        """Called at the start of every episode."""

    def attach_oracle(self, oracle: Oracle) -> None:
        """Gives an offline policy (``uses_oracle``) the oracle of the episode it is about to play."""
        raise TypeError(f"{self.name} is a legal policy and takes no oracle")

    @abstractmethod
    def choose(self, view: DecisionView) -> int:
        """Index (into ``view.candidates``) of the tensor to evict."""

    def choose_batch(self, views: list[DecisionView]) -> list[int]:
        """Choices for several independent decisions (override to batch model calls)."""
        return [self.choose(v) for v in views]

    def choose_observations(self, obs: np.ndarray, n_candidates: np.ndarray) -> list[int]:
        """Choices from a batch of observations (rows of ``envs.gym.features.observation_size(k)``) and the number of
        valid candidates of each; only for policies with ``observation_batched``."""
        raise NotImplementedError(f"{self.name} decides from views, not observations")

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description recorded with every result."""
        return {"name": self.name}


class ScorerPolicy(Policy):
    """Evicts the candidate with the lowest score."""

    @abstractmethod
    def score(self, view: DecisionView) -> np.ndarray:
        """One score per candidate; lower means evict first."""

    def choose(self, view: DecisionView) -> int:
        scores = np.asarray(self.score(view))
        if scores.shape != (view.n,):
            raise ValueError(f"{self.name}: expected {view.n} scores, got shape {scores.shape}")
        if np.issubdtype(scores.dtype, np.floating) and np.isnan(scores).any():
            raise ValueError(f"{self.name}: NaN score for a candidate")
        order = np.lexsort((view.candidates, view.last_access, scores))
        return int(order[0])
