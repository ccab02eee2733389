"""The Belady oracle: the only object that knows when tensors are used next.

A legal policy sees :class:`~envs.features.DecisionView` only; Belady is constructed with an :class:`Oracle`
bound to the running simulation (the env exposes one as ``env.unwrapped.oracle``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from agents.base import ScorerPolicy
from envs.sim import engine as E

if TYPE_CHECKING:
    from envs.features import DecisionView
    from envs.sim import Simulation


class Oracle:
    """Next-use times of tensors in a running simulation (index of next READ/WRITE; NEVER if none)."""

    NEVER = E.NEVER

    def __init__(self, sim: Simulation | None = None) -> None:
        self.sim = sim

    def bind(self, sim: Simulation) -> None:
        """Points the oracle at a (new) simulation."""
        self.sim = sim

    def next_use(self, tensor_ids: np.ndarray) -> np.ndarray:
        if self.sim is None:
            raise RuntimeError("the oracle is not bound to a simulation")
        return self.sim.T[np.asarray(tensor_ids, dtype=np.int64), E.F_NEXT].copy()


class Belady(ScorerPolicy):
    """Evicts the candidate whose next use is farthest (never-used-again first)."""

    name = "belady"
    engine_policy = "belady"
    uses_oracle = True

    def __init__(self, oracle: Oracle | None = None) -> None:
        self.oracle = oracle or Oracle()

    def score(self, view: DecisionView) -> np.ndarray:
        return -self.oracle.next_use(view.candidates)
