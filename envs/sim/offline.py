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

import numpy as np

from envs.episode import Episode
from envs.features import DecisionView
from envs.sim import engine as E
from envs.sim.engine import OP_READ
from envs.sim.simulator import PreparedTrace, SimError, SimResult, simulate

OFFLINE_REFERENCES = ("belady", "cost-belady", "lp-guided")


def _cost_per_byte_access(view: DecisionView, next_use: np.ndarray, next_is_read: np.ndarray, n: int) -> np.ndarray:
    """Bytes evicting each candidate costs, per byte and access of room it frees (a tensor not used again frees
    its room until the end of the trace)."""
    size = view.size.astype(np.float64)
    cost = size * (view.dirty > 0) + size * next_is_read
    never = next_use >= E.NEVER // 2
    dist = np.where(never, n + 1 - view.now, next_use - view.now).astype(np.float64)
    return cost / (size * np.maximum(dist, 1.0))


def offline_chooser(name: str, episode: Episode, residency: np.ndarray | None = None):
    """The choice function of the size- and write-back-aware reference ``name`` inside ``episode``: view -> index
    of the victim among the view's candidates. Works on any state, including those another policy led to (teacher
    labels for DAgger). Plain Belady is :class:`agents.heuristics.Belady`.

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
    return _chooser(episode, episode.prepared, residency if name == "lp-guided" else None)


def lp_residency(prepared: PreparedTrace, capacity: int) -> np.ndarray:
    """Solves the lower-bound LP at ``capacity`` and returns :func:`residency_by_access` of its solution."""
    from envs.sim.lower_bound import lower_bound

    _, x, intervals = lower_bound(prepared, capacity)
    return residency_by_access(prepared, x, intervals)


def _chooser(episode: Episode, prepared: PreparedTrace, residency: np.ndarray | None):
    opc = prepared.opc
    n = opc.shape[0]

    def choose(view: DecisionView) -> int:
        nu = episode.oracle.next_use(view.candidates)
        next_is_read = np.where(nu < n, opc[np.minimum(nu, n - 1)] == OP_READ, False)
        score = _cost_per_byte_access(view, nu, next_is_read, n)
        keys = [view.candidates, -nu, score]  # np.lexsort: last key is primary
        if residency is not None:
            keys.append(residency[view.last_access])
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
    episode = Episode(prepared, capacity)
    result = episode.play(_chooser(episode, prepared, residency))
    return _renamed(result, name)


def _renamed(result: SimResult, name: str) -> SimResult:
    from dataclasses import replace

    return replace(result, policy=name)
