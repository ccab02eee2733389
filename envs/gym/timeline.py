"""What happens inside a run: memory by tensor kind, residency by layer, hits and misses, at evenly spaced points.

The dashboard's memory timeline and residency heatmap come from here. A built-in engine policy runs in the
compiled loop, paused at each snapshot; any other chooser plays through the episode driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from envs.gym.episode import Episode
from envs.gym.features import DecisionView
from envs.sim.prepared import PreparedTrace
from envs.sim.simulator import POLICY_CODES, SimResult, Simulation
from envs.trace import Kind


@dataclass(frozen=True)
class Timeline:
    """Snapshots of one run.

    Attributes:
        position: Access index of each snapshot (after the accesses before it).
        resident_by_kind: Resident bytes per :class:`~envs.trace.Kind` at each snapshot (points x kinds).
        layer_residency: Fraction of each layer's bytes seen so far that is resident (layers x points).
        hits, misses: Requests that hit / missed in the window ending at each snapshot.
        bytes_moved: Cumulative bytes moved at each snapshot.
    """

    position: np.ndarray
    resident_by_kind: np.ndarray
    layer_residency: np.ndarray
    hits: np.ndarray
    misses: np.ndarray
    bytes_moved: np.ndarray


def record(
    prepared: PreparedTrace,
    capacity: int,
    policy: str | None = None,
    choose: Callable[[DecisionView], int] | None = None,
    *,
    k: int | None = None,
    rule: str = "lru",
    points: int = 100,
    seed: int = 0,
    schedule: bool = False,
) -> tuple[SimResult, Timeline]:
    """Runs a built-in ``policy`` (compiled) or a ``choose`` function (episode driver) and snapshots it."""
    if (policy is None) == (choose is None):
        raise ValueError("give exactly one of policy (a built-in engine policy) or choose")
    n = prepared.tid.shape[0]
    stops = np.unique(np.linspace(0, n, max(points, 1) + 1).astype(np.int64)[1:])
    layer_of_access = prepared.trace.layer.astype(np.int64)
    n_layers = int(layer_of_access.max()) + 2 if n else 1
    if policy is not None:
        if policy not in POLICY_CODES:
            raise ValueError(f"{policy} has no compiled engine policy; pass choose instead")
        sim = Simulation(prepared, capacity, policy, seed)

        def step(stop: int) -> None:
            sim.advance(until=stop)

    else:
        episode = Episode(prepared, capacity, k=k, rule=rule, seed=seed, schedule=schedule)
        sim = episode.sim

        def step(stop: int) -> None:
            while not episode.advance(until=stop) and episode.pending:
                episode.evict(choose(episode.view))

    kinds = np.zeros(prepared.sizes.shape[0], dtype=np.int64)
    layers = np.zeros(prepared.sizes.shape[0], dtype=np.int64)
    seen = np.zeros(prepared.sizes.shape[0], dtype=bool)
    by_kind = np.zeros((stops.shape[0], len(Kind)))
    by_layer = np.zeros((n_layers, stops.shape[0]))
    hits, misses, moved = (np.zeros(stops.shape[0], dtype=np.int64) for _ in range(3))
    prev_pos = prev_hits = prev_req = 0
    for j, stop in enumerate(stops):
        step(int(stop))
        state = sim.tensor_state()
        window = slice(prev_pos, int(stop))
        ids = prepared.tid[window]
        kinds[ids] = prepared.trace.kind[window]
        layers[ids] = np.maximum(layer_of_access[window], -1) + 1
        seen[ids] = True
        res = state.resident == 1
        sizes = state.size.astype(np.float64)
        by_kind[j] = np.bincount(kinds[res], weights=sizes[res], minlength=len(Kind))[: len(Kind)]
        total = np.bincount(layers[seen], weights=sizes[seen], minlength=n_layers)
        resident = np.bincount(layers[res], weights=sizes[res], minlength=n_layers)
        by_layer[:, j] = np.divide(resident, total, out=np.zeros(n_layers), where=total > 0)
        h, r = sim.hits, sim.n_requests
        hits[j], misses[j] = h - prev_hits, (r - h) - (prev_req - prev_hits)
        moved[j] = sim.bytes_moved
        prev_pos, prev_hits, prev_req = int(stop), h, r
    return sim.result(), Timeline(stops, by_kind, by_layer, hits, misses, moved)
