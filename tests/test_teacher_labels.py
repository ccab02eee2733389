"""Teacher labels for imitation: size- and write-back-aware teachers reproduce their offline reference exactly,
DAgger labels states another policy reaches, labelling is identical on any executor, and the LP residency cache
cannot feed a stale or damaged solution."""

from __future__ import annotations

import numpy as np
import pytest

from agents import make_policy
from envs.benchmarks import get_suite
from envs.gym.episode import Episode
from envs.sim import headroom_capacity, prepare
from envs.sim.offline import lp_residency, run_offline
from envs.trace import Trace
from eval.executor import Executor
from training.labels import TEACHERS, collect, iter_decisions


@pytest.mark.parametrize("teacher", ["cost-belady", "lp-guided"])
def test_following_the_teacher_labels_is_exactly_its_offline_run(small_serve_trace: Trace, teacher: str) -> None:
    prepared = prepare(small_serve_trace, "tensor")
    cap = headroom_capacity(prepared, 0.2)
    residency = lp_residency(prepared, cap) if teacher == "lp-guided" else None
    labels = [r.label for r in iter_decisions(prepared, cap, 10**6, "lru", teacher=teacher, residency=residency)]
    assert len(labels) > 20
    replay = iter(labels)
    played = Episode(prepared, cap).play(lambda view: next(replay))
    assert played.bytes_moved == run_offline(teacher, prepared, cap, residency=residency).bytes_moved
    # and the teachers differ from Belady's labels somewhere (they see sizes and write-backs)
    belady = [r.label for r in iter_decisions(prepared, cap, 10**6, "lru")]
    assert labels != belady


def test_dagger_labels_the_states_the_rollout_policy_reaches(small_serve_trace: Trace) -> None:
    prepared = prepare(small_serve_trace, "tensor")
    cap = headroom_capacity(prepared, 0.3)
    own = list(iter_decisions(prepared, cap, 8, "mixed", teacher="cost-belady"))
    lru = list(iter_decisions(prepared, cap, 8, "mixed", rollout=make_policy("lru"), teacher="cost-belady"))
    assert all(0 <= r.label < r.view.n for r in lru)
    # LRU's trajectory leaves the teacher's: different states, so different decisions get labelled
    assert len(lru) != len(own) or any(a.view.now != b.view.now for a, b in zip(lru, own, strict=True))


def test_unknown_teacher_is_refused(small_serve_trace: Trace) -> None:
    prepared = prepare(small_serve_trace, "tensor")
    with pytest.raises(ValueError, match="unknown teacher 'oracle'"):
        next(iter(iter_decisions(prepared, headroom_capacity(prepared, 0.3), 8, "mixed", teacher="oracle")))
    assert TEACHERS == ("belady", "cost-belady", "lp-guided")


def test_labels_are_identical_serial_and_in_a_process_pool() -> None:
    instances = sorted(get_suite("tcb-v2").instances("train"), key=lambda i: len(i.prepared.tid))[:2]
    serial = collect(instances, 16, "mixed", stride=8, teacher="lp-guided")
    pooled = collect(instances, 16, "mixed", stride=8, teacher="lp-guided", executor=Executor("process", 2))
    assert len(serial) > 0
    for name in ("obs", "mask", "label", "next_use"):
        assert np.array_equal(getattr(serial, name), getattr(pooled, name))
    assert serial.source == pooled.source


def test_lp_residency_cache_is_checked_and_resolved_when_damaged() -> None:
    inst = min(get_suite("tcb-v2").instances("train"), key=lambda i: len(i.prepared.tid))
    fresh = inst.lp_residency()
    cache = next(inst.path.parent.glob(f"{inst.path.stem}.residency-c{inst.capacity}-*.npz"))
    assert np.array_equal(inst.lp_residency(), fresh)  # read back from the cache
    # a cache for another trace (its key differs) is not used
    np.savez(cache, key=np.array(["other-trace", str(inst.capacity), "1"]), residency=np.zeros_like(fresh))
    assert np.array_equal(inst.lp_residency(), fresh)
    cache.write_bytes(b"not an npz file")
    assert np.array_equal(inst.lp_residency(), fresh)
