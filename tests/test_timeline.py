"""Timelines (envs.gym.timeline.record): every snapshot equals the state recomputed from scratch at its position."""

from __future__ import annotations

import numpy as np
import pytest

from agents import make_policy
from envs.gym.schedule import CompiledSchedule
from envs.gym.timeline import record
from envs.sim import headroom_capacity, prepare
from envs.sim.simulator import Simulation
from envs.trace import Kind


def _expected(prepared, capacity: int, policy: str, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Resident bytes per kind and per-layer resident fraction of the bytes seen, from the whole tensor state at
    each stop (the slow way: every tensor, every time), the run advanced by the engine or by the compiled twin."""
    trace = prepared.trace
    layer = np.maximum(trace.layer.astype(np.int64), -1) + 1
    n_layers = int(layer.max()) + 1
    if policy == "schedule":
        sim, twin = Simulation(prepared, capacity, pause=True), CompiledSchedule(prepared)
    else:
        sim, twin = Simulation(prepared, capacity, policy), None
    by_kind = np.zeros((stops.shape[0], len(Kind)))
    by_layer = np.zeros((n_layers, stops.shape[0]))
    for j, stop in enumerate(stops):
        twin.play(sim, int(stop)) if twin is not None else sim.advance(until=int(stop))
        state = sim.tensor_state()
        kinds = np.zeros(prepared.sizes.shape[0], dtype=np.int64)
        layers = np.zeros(prepared.sizes.shape[0], dtype=np.int64)
        seen = np.zeros(prepared.sizes.shape[0], dtype=bool)
        kinds[prepared.tid[:stop]] = trace.kind[:stop]  # later accesses overwrite earlier ones: the latest counts
        layers[prepared.tid[:stop]] = layer[:stop]
        seen[prepared.tid[:stop]] = True
        resident = state.resident == 1
        np.add.at(by_kind[j], kinds[resident], state.size[resident])
        total = np.bincount(layers[seen], weights=state.size[seen], minlength=n_layers)
        held = np.bincount(layers[resident], weights=state.size[resident], minlength=n_layers)
        by_layer[:, j] = np.divide(held, total, out=np.zeros(n_layers), where=total > 0)
    return by_kind, by_layer


@pytest.mark.parametrize("trace_name", ["small_train_trace", "small_serve_trace"])
@pytest.mark.parametrize("policy", ["lru", "lfu", "mru", "schedule"])
def test_snapshots_match_the_state_recomputed_from_scratch(trace_name: str, policy: str, request) -> None:
    prepared = prepare(request.getfixturevalue(trace_name))
    capacity = headroom_capacity(prepared, 0.3)
    if policy == "schedule":  # the compiled twin's path (record's Python loop)
        agent = make_policy("schedule")
        result, timeline = record(prepared, capacity, choose=agent.choose, compiled=agent.compiled, points=17)
    else:  # the engine's path (one compiled call)
        result, timeline = record(prepared, capacity, policy, points=17)
    assert timeline.position.shape[0] == 17 and timeline.bytes_moved[-1] == result.bytes_moved
    by_kind, by_layer = _expected(prepared, capacity, policy, timeline.position)
    assert by_kind[-1].sum() > 0 and (by_layer > 0).any()
    np.testing.assert_allclose(timeline.resident_by_kind, by_kind)
    np.testing.assert_allclose(timeline.layer_residency, by_layer)
