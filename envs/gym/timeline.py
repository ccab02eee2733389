"""What happens inside a run: memory by tensor kind, residency by layer, hits and misses, at evenly spaced points.

The dashboard's memory timeline and residency heatmap come from here. A built-in engine policy runs in the
compiled loop, paused at each snapshot; any other chooser plays through the episode driver.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numba
import numpy as np

from envs.gym.episode import Episode
from envs.gym.features import DecisionView
from envs.sim import engine as E
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


@numba.njit(cache=True, nogil=True)
def _snapshot(T, S, dense, tid, kind_of_access, layer_index, start, stop, kinds, layers, seen, seen_bytes, by_kind,
              by_layer):  # fmt: skip  # pragma: no cover - compiled
    """Fills one snapshot after accesses ``start..stop``: resident bytes per kind, and per layer the resident fraction
    of the bytes seen so far. A tensor counts under the kind and layer of its latest access; the bytes seen per layer
    are kept up to date across snapshots (``seen_bytes``), so a snapshot reads only the window's accesses and the
    resident tensors, never every tensor."""
    for i in range(start, min(stop, tid.shape[0])):
        t = tid[i]
        size = E.tensor_size(T, t)
        if seen[t]:
            seen_bytes[layers[t]] -= size
        kinds[t] = kind_of_access[i]
        layers[t] = layer_index[i]
        seen[t] = True
        seen_bytes[layers[t]] += size
    resident_bytes = np.zeros(by_layer.shape[0])
    for d in range(E.n_resident(S)):
        t = dense[d]
        size = E.tensor_size(T, t)
        by_kind[kinds[t]] += size
        resident_bytes[layers[t]] += size
    for lay in range(by_layer.shape[0]):
        by_layer[lay] = resident_bytes[lay] / seen_bytes[lay] if seen_bytes[lay] > 0 else 0.0


@numba.njit(cache=True, nogil=True)
def _record_engine(T, S, H, dense, tid, opc, op_index, op_end, next_use, stops, kind_of_access, layer_index, kinds,
                   layers, seen, seen_bytes, by_kind, by_layer, hits, misses, moved):  # fmt: skip  # pragma: no cover - compiled
    """A built-in policy's whole run with its snapshots (what :func:`record`'s Python loop computes for a chooser)."""
    prev_pos = 0
    prev_hits = 0
    prev_req = 0
    for j in range(stops.shape[0]):
        stop = stops[j]
        E.run(T, S, H, dense, tid, opc, op_index, op_end, next_use, stop)
        _snapshot(T, S, dense, tid, kind_of_access, layer_index, prev_pos, stop, kinds, layers, seen, seen_bytes,
                  by_kind[j], by_layer[:, j])  # fmt: skip
        h, r, m = E.request_counts(S)
        hits[j] = h - prev_hits
        misses[j] = (r - h) - (prev_req - prev_hits)
        moved[j] = m
        prev_pos, prev_hits, prev_req = stop, h, r


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
    compiled: Callable[[PreparedTrace], Any] | None = None,
) -> tuple[SimResult, Timeline]:
    """Runs a built-in ``policy`` (compiled) or a ``choose`` function (episode driver; or ``compiled``, its
    compiled twin, e.g. :class:`envs.gym.schedule.CompiledSchedule`) and snapshots it."""
    if (policy is None) == (choose is None):
        raise ValueError("give exactly one of policy (a built-in engine policy) or choose")
    n = prepared.tid.shape[0]
    stops = np.unique(np.linspace(0, n, max(points, 1) + 1).astype(np.int64)[1:])
    layer_of_access = prepared.trace.layer.astype(np.int64)
    n_layers = int(layer_of_access.max()) + 2 if n else 1
    kinds = np.zeros(prepared.sizes.shape[0], dtype=np.int64)
    layers = np.zeros(prepared.sizes.shape[0], dtype=np.int64)
    seen = np.zeros(prepared.sizes.shape[0], dtype=bool)
    seen_bytes = np.zeros(n_layers)
    kind_of_access = np.ascontiguousarray(prepared.trace.kind, dtype=np.int64)
    layer_index = np.maximum(layer_of_access, -1) + 1
    by_kind = np.zeros((stops.shape[0], len(Kind)))
    by_layer = np.zeros((n_layers, stops.shape[0]))
    hits, misses, moved = (np.zeros(stops.shape[0], dtype=np.int64) for _ in range(3))
    if policy is not None:  # the whole run and its snapshots in one compiled call
        if policy not in POLICY_CODES:
            raise ValueError(f"{policy} has no compiled engine policy; pass choose instead")
        sim = Simulation(prepared, capacity, policy, seed)
        p = prepared
        _record_engine(sim.T, sim.S, sim.H, sim.dense, p.tid, p.opc, p.op_index, p.op_end, p.next_use, stops,
                       kind_of_access, layer_index, kinds, layers, seen, seen_bytes, by_kind, by_layer, hits, misses,
                       moved)  # fmt: skip
        sim.set_status(False)
        return sim.result(), Timeline(stops, by_kind, by_layer, hits, misses, moved)
    if compiled is not None:  # the chooser's compiled twin plays each stretch between snapshots
        sim = Simulation(prepared, capacity, pause=True)
        play = compiled(prepared)
    else:
        episode = Episode(prepared, capacity, k=k, rule=rule, seed=seed, schedule=schedule)
        sim = episode.sim
    prev_pos = prev_hits = prev_req = 0
    for j, stop in enumerate(stops):
        if compiled is not None:
            play.play(sim, int(stop))
        else:
            while not episode.advance(until=int(stop)) and episode.pending:
                episode.evict(choose(episode.view))
        _snapshot(sim.T, sim.S, sim.dense, prepared.tid, kind_of_access, layer_index, prev_pos, int(stop), kinds,
                  layers, seen, seen_bytes, by_kind[j], by_layer[:, j])  # fmt: skip
        h, r = sim.hits, sim.n_requests
        hits[j], misses[j] = h - prev_hits, (r - h) - (prev_req - prev_hits)
        moved[j] = sim.bytes_moved
        prev_pos, prev_hits, prev_req = int(stop), h, r
    if compiled is not None:
        sim.set_status(False)
    return sim.result(), Timeline(stops, by_kind, by_layer, hits, misses, moved)
