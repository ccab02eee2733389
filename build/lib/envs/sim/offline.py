"""Feasible offline references: policies that read the future (through the oracle) and know the cost model.

They show what is attainable, next to the lower bound (:mod:`envs.sim.lower_bound`) that no policy beats:

- ``belady``: Belady's MIN, the farthest next use first (ignores sizes and write-backs).
- ``cost-belady``: evicts the candidate with the least cost per byte-access freed: (bytes it will cost to evict
  it: a write-back if dirty, a read-back if its next access is a READ) / (its bytes x accesses until that next
  access). Free victims (clean, next access a WRITE or none) go first, farthest next use first.
- ``lp-guided``: plays the lower-bound LP's solution: evicts the candidate whose current interval the LP keeps
  least (smallest residency value), ties broken like ``cost-belady``.

``best-offline`` is, per run, the reference that moves the fewest bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace

import numpy as np

from envs.sim import engine as E
from envs.sim.engine import OP_READ
from envs.sim.errors import SimError
from envs.sim.oracle import Oracle
from envs.sim.policies import OFFLINE_REFERENCES
from envs.sim.prepared import PreparedTrace
from envs.sim.simulator import SimResult, Simulation, simulate

#: A size- and write-back-aware choice: (paused simulation, candidate tensor ids) -> index of the victim.
OfflineChoice = Callable[[Simulation, np.ndarray], int]
__all__ = ["OFFLINE_REFERENCES", "OfflineChoice", "best_offline", "lp_residency", "offline_chooser", "residency_by_access",
           "run_offline"]  # fmt: skip


def best_offline(runs: Iterable[SimResult]) -> SimResult:
    """The run that moves the fewest bytes (ties: the first given; give them in :data:`OFFLINE_REFERENCES` order)."""
    return min(runs, key=lambda r: r.bytes_moved)


def _cost_per_byte_access(size: np.ndarray, dirty: np.ndarray, now: int, next_use: np.ndarray, next_is_read: np.ndarray,
                          n: int) -> np.ndarray:  # fmt: skip
    """Bytes evicting each candidate costs, per byte and access of room it frees (a tensor not used again frees
    its room until the end of the trace)."""
    size = size.astype(np.float64)
    cost = size * (dirty > 0) + size * next_is_read
    never = next_use >= E.NEVER // 2
    dist = np.where(never, n + 1 - now, next_use - now).astype(np.float64)
    return cost / (size * np.maximum(dist, 1.0))


def offline_chooser(name: str, prepared: PreparedTrace, residency: np.ndarray | None = None) -> OfflineChoice:
    """The choice function of the size- and write-back-aware reference ``name``: (paused simulation, candidate
    ids) -> index of the victim among the candidates. Works on any state, including those another policy led to
    (teacher labels for DAgger: pass ``episode.sim`` and the view's candidates). Plain Belady is the engine policy
    ``belady``.

    Args:
        name: ``cost-belady`` or ``lp-guided``.
        residency: For ``lp-guided``, :func:`residency_by_access` of the solved bound at this capacity.

    Raises:
        SimError: On an unknown name, or ``lp-guided`` without ``residency``.
    """
    if name not in ("cost-belady", "lp-guided"):
        raise SimError(f"no size-aware chooser named {name!r}; valid: cost-belady, lp-guided (Belady is a heuristic)")
    if name == "lp-guided" and residency is None:
        raise SimError("lp-guided needs the residency of the solved bound (residency_by_access)")
    return _chooser(prepared, residency if name == "lp-guided" else None)


def lp_residency(prepared: PreparedTrace, capacity: int) -> np.ndarray:
    """Solves the lower-bound LP at ``capacity`` and returns :func:`residency_by_access` of its solution."""
    from envs.sim.lower_bound import lower_bound

    _, x, intervals = lower_bound(prepared, capacity)
    return residency_by_access(prepared, x, intervals)


def _chooser(prepared: PreparedTrace, residency: np.ndarray | None) -> OfflineChoice:
    opc = prepared.opc
    n = opc.shape[0]

    def choose(sim: Simulation, candidates: np.ndarray) -> int:
        state = sim.tensor_state(candidates)
        nu = Oracle(sim).next_use(candidates)
        next_is_read = np.where(nu < n, opc[np.minimum(nu, n - 1)] == OP_READ, False)
        score = _cost_per_byte_access(state.size, state.dirty, sim.now, nu, next_is_read, n)
        keys = [candidates, -nu, score]  # np.lexsort: last key is primary
        if residency is not None:
            keys.append(residency[state.last_access])
        return int(np.lexsort(keys)[0])

    return choose


def residency_by_access(prepared: PreparedTrace, x: np.ndarray, intervals) -> np.ndarray:
    """The LP residency value of the interval starting at each access (0 where the interval costs nothing)."""
    residency = np.zeros(prepared.tid.shape[0], dtype=np.float64)
    residency[intervals.start] = x
    return residency


def run_offline(name: str, prepared: PreparedTrace, capacity: int, *, residency: np.ndarray | None = None) -> SimResult:
    """Runs the offline reference ``name`` over ``prepared`` at ``capacity`` bytes (tensor mode).

    Args:
        residency: For ``lp-guided``, :func:`residency_by_access` of an already solved bound (solved here if None).

    Raises:
        SimError: On an unknown name, classic mode, or an infeasible capacity.
    """
    if name not in OFFLINE_REFERENCES:
        raise SimError(f"unknown offline reference {name!r}; valid: {', '.join(OFFLINE_REFERENCES)}")
    if name == "belady":
        return simulate(prepared, "belady", capacity)
    if prepared.classic:
        raise SimError(f"{name} is defined for tensor mode")
    if name == "lp-guided" and residency is None:
        residency = lp_residency(prepared, capacity)
    elif name != "lp-guided":
        residency = None
    choose = _chooser(prepared, residency)
    sim = Simulation(prepared, capacity, pause=True)
    while not sim.advance():
        candidates = sim.candidates()  # every evictable resident tensor
        sim.evict(int(candidates[choose(sim, candidates)]))
    return replace(sim.result(), policy=name)
