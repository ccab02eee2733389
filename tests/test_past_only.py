"""Observations, candidates, prompts and schedule-aware predictions see the past only: cutting a trace at an op
boundary leaves every decision before the cut unchanged (same actions, same capacity)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.prompt import PROMPT_VERSIONS, serialize
from envs.gym.episode import Episode
from envs.sim import headroom_capacity, prepare
from envs.trace import COLUMNS, Trace
from envs.workloads import generate_trace

WORKLOADS = [
    ("transformer-train", "gpt2-small", {"layers": 2, "iterations": 2}),
    ("transformer-infer", "gpt2-small", {"layers": 2, "iterations": 4}),
    ("moe-infer", "mixtral-8x7b", {"layers": 1, "iterations": 4}),
    ("cnn-train", "resnet50", {"iterations": 2, "batch": 4}),
]


def _cut(trace: Trace, n_ops: int) -> Trace:
    """The trace up to (not including) op ``n_ops``: an op-boundary cut."""
    end = int(np.searchsorted(trace.op_index, n_ops))
    return Trace.from_arrays({c: getattr(trace, c)[:end] for c in COLUMNS}, dict(trace.meta))


def _decisions(trace: Trace, capacity: int, rule: str, limit: int) -> list[tuple[int, np.ndarray, str, np.ndarray]]:
    """(access index, observation, prompts, candidates) of the first ``limit`` decisions, always evicting the
    candidate in slot ``now % n`` (a fixed action sequence that does not depend on the features). The views carry
    the schedule's predictions, so the prompts are every version's."""
    episode = Episode(prepare(trace), capacity, k=16, rule=rule, schedule=True)
    out = []
    while len(out) < limit and not episode.advance():
        v = episode.view
        prompts = " | ".join(serialize(v, version) for version in PROMPT_VERSIONS)
        out.append((v.now, v.observation().copy(), prompts, v.candidates.copy()))
        episode.evict(v.now % v.n)
    return out


@pytest.mark.parametrize(("workload", "preset", "kw"), WORKLOADS, ids=[w[0] for w in WORKLOADS])
@pytest.mark.parametrize("rule", ["lru", "mixed", "schedule"])
def test_cutting_a_trace_leaves_earlier_decisions_unchanged(workload: str, preset: str, kw: dict, rule: str) -> None:
    full = generate_trace(workload, preset, seed=3, **kw)
    capacity = headroom_capacity(prepare(full), 0.2)
    n_ops = int(full.op_index[-1]) + 1
    for fraction in (0.3, 0.6):
        cut = _cut(full, int(n_ops * fraction))
        if prepare(cut).op_bytes_max > capacity:
            continue
        before = _decisions(cut, capacity, rule, limit=400)
        after = _decisions(full, capacity, rule, limit=len(before))
        assert before, "the cut trace must have decisions to compare"
        for (n1, o1, p1, c1), (n2, o2, p2, c2) in zip(before, after, strict=True):
            assert n1 == n2
            assert np.array_equal(c1, c2)
            assert np.array_equal(o1, o2), f"observation differs at access {n1}"
            assert p1 == p2, f"prompt differs at access {n1}"


SCHEDULE_WORKLOADS = [
    ("transformer-train", "gpt2-small", {"layers": 2, "iterations": 3}),
    ("transformer-infer", "gpt2-small", {"layers": 2, "iterations": 4}),
    ("moe-infer", "mixtral-8x7b", {"layers": 1, "iterations": 4}),
    ("cnn-train", "resnet50", {"iterations": 3, "batch": 2}),
]


def _schedule_decisions(trace: Trace, capacity: int) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """(access index, candidates, schedule distances) of every decision of a fixed action sequence."""
    episode = Episode(prepare(trace), capacity, k=32, schedule=True)
    out = []
    while not episode.advance():
        v = episode.view
        out.append((v.now, v.candidates.copy(), np.stack([v.schedule_distance, v.schedule_next_read])))
        episode.evict(v.now % v.n)
    return out


@pytest.mark.parametrize(("workload", "preset", "kw"), SCHEDULE_WORKLOADS, ids=[w[0] for w in SCHEDULE_WORKLOADS])
def test_schedule_predictions_see_the_past_only(workload: str, preset: str, kw: dict) -> None:
    from envs.gym.schedule import DEAD

    full = generate_trace(workload, preset, seed=3, **kw)
    capacity = headroom_capacity(prepare(full), 0.2)
    after = _schedule_decisions(full, capacity)
    n_ops = int(full.op_index[-1]) + 1
    lined_up = 0
    for fraction in (0.5, 0.85):  # cuts inside later iterations, where the previous one is read
        cut = _cut(full, int(n_ops * fraction))
        if prepare(cut).op_bytes_max > capacity:
            continue
        before = _schedule_decisions(cut, capacity)
        assert before, "the cut trace must have decisions to compare"
        for (n1, c1, d1), (n2, c2, d2) in zip(before, after, strict=False):
            assert n1 == n2 and np.array_equal(c1, c2)
            assert np.array_equal(d1, d2), f"schedule prediction differs at access {n1}"
        cut_its = full.iteration[[n for n, _, _ in before]]
        lined_up += int(sum(1 for (_, _, d), it in zip(before, cut_its, strict=True) if it > 0 and (d[0] == DEAD).any()))
    assert lined_up > 0 or workload == "transformer-infer", "no decision read the previous iteration"
