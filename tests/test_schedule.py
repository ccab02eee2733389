"""The schedule-aware predictor and the ``schedule`` heuristic: exact on a schedule that repeats, phase rules before
the first iteration ends, dead tensors detected, and the heuristic wired into every runner (its legality: the
cut-trace test in tests/test_past_only.py)."""

from __future__ import annotations

import numpy as np

from agents.registry import builtin_registry
from agents.rollout import run_policy
from envs.gym.episode import Episode
from envs.gym.schedule import DEAD
from envs.sim import headroom_capacity, prepare, simulate
from envs.trace import COLUMNS, Kind, Op, Phase, Trace


def _training_like(n_weights: int = 8, iterations: int = 4, size: int = 1 << 20) -> Trace:
    """Each iteration: forward reads weights 0..n-1 and writes one activation per layer; backward reads the
    weights n-1..0 and each layer's activation (then frees it); the optimizer reads and writes weights 0..n-1."""
    rows = []  # (tensor, op, kind, layer, phase, iteration)
    op = 0
    next_id = n_weights
    for it in range(iterations):
        acts = []
        for w in range(n_weights):
            a = next_id
            next_id += 1
            acts.append(a)
            rows += [
                (w, Op.READ, Kind.WEIGHT, w, Phase.FORWARD, it, op),
                (a, Op.WRITE, Kind.ACTIVATION, w, Phase.FORWARD, it, op),
            ]
            op += 1
        for w in reversed(range(n_weights)):
            rows += [(w, Op.READ, Kind.WEIGHT, w, Phase.BACKWARD, it, op), (acts[w], Op.READ, Kind.ACTIVATION, w,
                     Phase.BACKWARD, it, op), (acts[w], Op.FREE, Kind.ACTIVATION, w, Phase.BACKWARD, it, op)]  # fmt: skip
            op += 1
        for w in range(n_weights):
            rows += [
                (w, Op.READ, Kind.WEIGHT, w, Phase.OPTIMIZER, it, op),
                (w, Op.WRITE, Kind.WEIGHT, w, Phase.OPTIMIZER, it, op),
            ]
            op += 1
    a = np.array([(t, int(o), int(k), lay, int(ph), it, opi) for t, o, k, lay, ph, it, opi in rows], dtype=np.int64)
    cols = {"tensor_id": a[:, 0], "size": np.full(len(a), size), "op": a[:, 1], "kind": a[:, 2], "layer": a[:, 3],
            "phase": a[:, 4], "iteration": a[:, 5], "op_index": a[:, 6]}  # fmt: skip
    assert set(cols) == set(COLUMNS)
    return Trace.from_arrays(cols, {"workload": "training-like"})


def test_predictions_equal_the_true_next_use_once_an_iteration_has_finished() -> None:
    trace = _training_like()
    prepared = prepare(trace)
    episode = Episode(prepared, 5 << 20, schedule=True)  # every evictable tensor is a candidate
    checked = 0
    while not episode.advance():
        v = episode.view
        it = int(trace.iteration[v.now])
        if 1 <= it < 3:  # a finished iteration behind, and one ahead (the last predicts a next that never comes)
            true = episode.oracle.next_use(v.candidates).astype(np.float64) - v.now
            true[true > DEAD] = DEAD
            assert np.array_equal(v.schedule_distance, true), (v.now, v.candidates, v.schedule_distance, true)
            checked += 1
        episode.evict(0)
    assert checked > 20


def test_phase_rules_before_the_first_iteration_ends() -> None:
    trace = _training_like()
    episode = Episode(prepare(trace), 5 << 20, schedule=True)
    seen = set()
    while not episode.advance():
        v = episode.view
        if trace.iteration[v.now] == 0:
            ph = int(trace.phase[v.now])
            age = v.now - v.last_access
            d = v.schedule_distance
            touched_here = trace.phase[v.last_access] == ph
            if ph == Phase.FORWARD:
                assert np.array_equal(d, age)  # least recent needed last
            elif ph == Phase.BACKWARD:  # touched in backward: needed only after it, so they go first
                assert (d[touched_here] > d[~touched_here].max(initial=-1)).all()
            else:  # the optimizer's sweeps: the most recent of those it touched goes first
                mine = d[touched_here]
                assert np.array_equal(np.argsort(-mine, kind="stable"), np.argsort(age[touched_here], kind="stable"))
            seen.add(ph)
        episode.evict(0)
    assert seen == {Phase.FORWARD, Phase.BACKWARD, Phase.OPTIMIZER}


def test_the_heuristic_beats_lru_here_and_runs_through_every_runner() -> None:
    trace = _training_like(n_weights=12, iterations=5)
    prepared = prepare(trace)
    cap = headroom_capacity(prepared, 0.3)
    reg = builtin_registry()
    policy = reg.make("schedule")
    assert policy.engine_policy is None and policy.uses_schedule and reg.spec("schedule").legal
    run = run_policy(prepared, policy, cap)
    from envs.sim.lower_bound import lower_bound

    bound = lower_bound(prepared, cap)[0].bytes
    assert bound <= run.result.bytes_moved < simulate(prepared, "lru", cap).bytes_moved
    from envs.gym.timeline import record

    result, timeline = record(prepared, cap, choose=policy.choose, points=4, schedule=True)
    assert result.bytes_moved == run.result.bytes_moved and timeline.position.shape == (4,)


def test_the_compiled_heuristic_makes_the_episode_driver_s_choices(small_train_trace, small_serve_trace) -> None:
    """The compiled twin (whole runs, timelines) and the episode driver with ScheduleAware give identical counters
    and decisions on training and serving traces at several memory sizes, and identical timelines."""
    from envs.gym.timeline import record

    policy = builtin_registry().make("schedule")
    for trace in (small_train_trace, small_serve_trace, _training_like(n_weights=12, iterations=5)):
        prepared = prepare(trace)
        for headroom in (0.05, 0.3, 0.7):
            cap = headroom_capacity(prepared, headroom)
            fast = run_policy(prepared, policy, cap)
            slow = run_policy(prepared, policy, cap, fast=False)
            assert fast.result == slow.result and fast.decisions == slow.decisions > 0
        compiled = record(prepared, cap, choose=policy.choose, points=7, schedule=True, compiled=policy.compiled)
        driven = record(prepared, cap, choose=policy.choose, points=7, schedule=True)
        assert compiled[0] == driven[0]
        for a, b in zip(compiled[1].__dict__.values(), driven[1].__dict__.values(), strict=True):
            np.testing.assert_array_equal(a, b)


def _serving_like(n_layers: int = 4, n_experts: int = 4, steps: int = 6, routed: dict | None = None) -> Trace:
    """A prefill then decode steps, each reading every layer's dense weight and the experts ``routed[(step, layer)]``
    (default: all) of that layer; ids: dense weight ``layer``, expert ``n_layers + layer * n_experts + e``."""
    rows = []
    op = 0
    for it in range(steps):
        phase = Phase.PREFILL if it == 0 else Phase.DECODE
        for lay in range(n_layers):
            rows.append((lay, Op.READ, Kind.WEIGHT, lay, phase, it, op))
            op += 1
            for e in (routed or {}).get((it, lay), range(n_experts)):
                rows.append((n_layers + lay * n_experts + e, Op.READ, Kind.WEIGHT, lay, phase, it, op))
                op += 1
    a = np.array([(t, int(o), int(k), lay, int(ph), it, opi) for t, o, k, lay, ph, it, opi in rows], dtype=np.int64)
    cols = {"tensor_id": a[:, 0], "size": np.full(len(a), 1 << 20), "op": a[:, 1], "kind": a[:, 2], "layer": a[:, 3],
            "phase": a[:, 4], "iteration": a[:, 5], "op_index": a[:, 6]}  # fmt: skip
    return Trace.from_arrays(cols, {"workload": "serving-like"})


def _predict_at(trace: Trace, now: int, tensors: list[int]) -> np.ndarray:
    from envs.gym.schedule import SchedulePredictor

    prepared = prepare(trace)
    tid = trace.tensor_id
    last = np.array([int(np.flatnonzero(tid[:now] == t)[-1]) for t in tensors], dtype=np.int64)
    interval = np.zeros(len(tensors), dtype=np.int64)
    for j, t in enumerate(tensors):
        seen = np.flatnonzero(tid[:now] == t)
        interval[j] = seen[-1] - seen[-2] if len(seen) > 1 else 0
    return SchedulePredictor(prepared).predict(now, np.array(tensors, dtype=np.int64), last, interval)


def test_serving_weights_without_a_reuse_interval_follow_the_layer_cycle() -> None:
    # in the first decode step no weight has been read twice: the layer cycle says a weight comes back when its
    # layer's turn comes in this step, so the earlier layer is needed first (the old rule called them all dead)
    trace = _serving_like(n_experts=0)
    now = int(np.flatnonzero(trace.iteration == 1)[0]) + 1  # layer 0's weight was just read again, 1's is read now
    dist = _predict_at(trace, now, [2, 3])[0]
    assert (dist < DEAD).all() and (np.diff(dist) > 0).all(), dist


def test_routed_experts_are_predicted_by_how_often_the_finished_decode_steps_used_them() -> None:
    # expert 0 of layer 0 is used in every decode step, expert 1 only in steps 4 and 5 of five: at step 6 both were
    # read one step ago (the last reuse interval says: again within a step), but the rarely used one is predicted
    # more than a step away and the regular one within a step
    routed = {(it, 0): ([0, 1] if it in (4, 5) else [0]) for it in range(1, 7)}
    trace = _serving_like(n_layers=2, n_experts=2, steps=7, routed=routed)
    now = int(np.flatnonzero(trace.iteration == 6)[0])
    step = now - int(np.flatnonzero(trace.iteration == 5)[0])
    regular, rare = 2, 3  # ids: n_layers + layer * n_experts + e
    dist = _predict_at(trace, now, [regular, rare])[0]
    assert dist[0] <= step < dist[1], (dist, step)
