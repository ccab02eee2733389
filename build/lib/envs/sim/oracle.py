"""The oracle: the only object that knows when tensors are used next.

A legal policy sees a sealed :class:`~envs.gym.features.DecisionView` and nothing else. Offline references (Belady),
label generation and the offline bounds read next-use times through an :class:`Oracle` bound to the running
simulation; the env exposes one as ``env.unwrapped.oracle`` for imitation learning, never inside an observation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from envs.sim import engine as E

if TYPE_CHECKING:
    from envs.sim.simulator import Simulation


class Oracle:
    """Next-use times of tensors in a running simulation (index of the next READ/WRITE; ``NEVER`` if none)."""

    NEVER = E.NEVER

    def __init__(self, sim: Simulation | None = None) -> None:
        self._sim = sim

    def bind(self, sim: Simulation) -> None:
        """Points the oracle at a (new) simulation."""
        self._sim = sim

    def next_use(self, tensor_ids: np.ndarray) -> np.ndarray:
        """Access index of each tensor's next use (``NEVER`` when it is not used again before being freed)."""
        if self._sim is None:
            raise RuntimeError("the oracle is not bound to a simulation")
        return self._sim.T[np.asarray(tensor_ids, dtype=np.int64), E.F_NEXT].copy()
