"""Observations, candidates and prompts see the past only: cutting a trace at an op boundary leaves every
decision before the cut unchanged (same actions, same capacity)."""

from __future__ import annotations

import numpy as np
import pytest

from agents.prompt import serialize
from envs.gym.episode import Episode
from envs.sim import headroom_capacity, prepare
from envs.trace import COLUMNS, Trace
from envs.workloads import generate_trace

WORKLOADS = [
    ("transformer-train", "gpt2-small", {"layers": 2, "iterations": 2}),
    ("transformer-infer", "gpt2-small", {"layers": 2, "iterations": 4}),
    ("moe-infer", "mixtral-8x7b", {"layers": 1, "iterations": 3}),
    ("cnn-train", "resnet50", {"iterations": 2, "batch": 4}),
]


def _cut(trace: Trace, n_ops: int) -> Trace:
    """The trace up to (not including) op ``n_ops``: an op-boundary cut."""
    end = int(np.searchsorted(trace.op_index, n_ops))
    return Trace.from_arrays({c: getattr(trace, c)[:end] for c in COLUMNS}, dict(trace.meta))


def _decisions(trace: Trace, capacity: int, rule: str, limit: int) -> list[tuple[int, np.ndarray, str, np.ndarray]]:
    """(access index, observation, prompt, candidates) of the first ``limit`` decisions, always evicting the
    candidate in slot ``now % n`` (a fixed action sequence that does not depend on the features)."""
    episode = Episode(prepare(trace), capacity, k=16, rule=rule)
    out = []
    while len(out) < limit and not episode.advance():
        v = episode.view
        out.append((v.now, v.observation().copy(), serialize(v), v.candidates.copy()))
        episode.evict(v.now % v.n)
    return out


@pytest.mark.parametrize(("workload", "preset", "kw"), WORKLOADS, ids=[w[0] for w in WORKLOADS])
@pytest.mark.parametrize("rule", ["lru", "mixed"])
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
