"""Teacher labels for imitation: at every eviction decision, the legal observation and an offline teacher's choice.

The teacher is one of :data:`TEACHERS`: ``belady`` (farthest next use, ties least recent, then lowest id),
``cost-belady`` or ``lp-guided`` (size- and write-back-aware, :mod:`envs.sim.offline`; ``lp-guided`` plays the
lower-bound LP's solution and is the best offline reference on tcb-v2). A rollout follows the teacher itself, or
(DAgger) any given policy while the teacher labels the states that policy visits. The label is the candidate the
teacher evicts among the K offered; ``next_use`` keeps each candidate's distance to its next use for ranking
losses (-1 = empty slot, NEVER = not used again). Observations are the sealed views'
(:class:`envs.gym.features.DecisionView`) and hold no future information. :func:`collect` labels suite instances
independently of each other through an :class:`eval.executor.Executor` (serial, process pool or Ray).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from agents.base import Policy
from agents.heuristics import Belady
from envs.gym.episode import Episode
from envs.gym.features import DecisionView, observation_size
from envs.sim.prepared import PreparedTrace

#: Offline teachers whose choices label decisions.
TEACHERS = ("belady", "cost-belady", "lp-guided")


@dataclass
class DecisionRecord:
    """One labelled decision (kept alongside its view for text serialisation)."""

    task: str
    seed: int
    step: int
    label: int
    next_use: np.ndarray
    view: DecisionView


@dataclass
class LabelSet:
    """Stacked labelled decisions."""

    obs: np.ndarray
    mask: np.ndarray
    label: np.ndarray
    next_use: np.ndarray
    source: list[tuple[str, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def __add__(self, other: LabelSet) -> LabelSet:
        return LabelSet.concat([self, other])

    @staticmethod
    def concat(parts: list[LabelSet]) -> LabelSet:
        """The parts stacked in order, each array copied once."""
        return LabelSet(
            np.concatenate([p.obs for p in parts]),
            np.concatenate([p.mask for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.next_use for p in parts]),
            [s for p in parts for s in p.source],
        )


def iter_decisions(
    prepared: PreparedTrace,
    capacity: int,
    k: int,
    rule: str,
    rollout: Policy | None = None,
    task: str = "",
    seed: int = 0,
    teacher: str = "belady",
    residency: np.ndarray | None = None,
    version: int = 1,
) -> Iterable[DecisionRecord]:
    """Replays one trace through the episode driver; yields a :class:`DecisionRecord` per eviction (before the
    victim is applied), then evicts the teacher's choice or, with ``rollout``, that policy's.

    Args:
        teacher: One of :data:`TEACHERS`.
        residency: For ``lp-guided``, the solved bound's residency (:func:`envs.sim.offline.lp_residency`);
            solved here when None.
    """
    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; valid: {', '.join(TEACHERS)}")
    schedule = version != 1 or (rollout is not None and rollout.uses_schedule)
    episode = Episode(prepared, capacity, k=k, rule=rule, seed=seed, schedule=schedule, observation_version=version)
    if teacher == "belady":
        label_of = Belady(episode.oracle).choose
    else:
        from envs.sim.offline import lp_residency, offline_chooser

        if teacher == "lp-guided" and residency is None:
            residency = lp_residency(prepared, capacity)
        choose = offline_chooser(teacher, prepared, residency)

        def label_of(view: DecisionView) -> int:
            return choose(episode.sim, view.candidates)

    if rollout is not None:
        rollout.reset(seed)
        if rollout.uses_oracle:
            rollout.attach_oracle(episode.oracle)
    while not episode.advance():
        view = episode.view
        label = label_of(view)
        nu = episode.oracle.next_use(view.candidates) - view.now
        yield DecisionRecord(task, seed, episode.n_decisions, label, nu, view)
        episode.evict(label if rollout is None else rollout.choose(view))


def _label_job(job: tuple) -> LabelSet:
    return _label(*job)


def instance_decisions(inst, k: int, rule: str, rollout: Policy | None, stride: int, teacher: str,
                       version: int = 1) -> Iterable[DecisionRecord]:  # fmt: skip
    """Every ``stride``-th labelled decision of a suite instance (:class:`envs.benchmarks.Instance`); the
    ``lp-guided`` teacher reads the instance's cached LP solution."""
    residency = inst.lp_residency() if teacher == "lp-guided" else None
    for rec in iter_decisions(inst.prepared, inst.capacity, k, rule, rollout, inst.task, inst.seed, teacher, residency,
                              version):  # fmt: skip
        if rec.step % stride == 0:
            yield rec


def _label(inst, k: int, rule: str, rollout: Policy | None, stride: int, teacher: str, version: int = 1) -> LabelSet:
    obs, mask, label, nus, src = [], [], [], [], []
    for rec in instance_decisions(inst, k, rule, rollout, stride, teacher, version):
        nu = np.full(k, -1, dtype=np.int64)
        nu[: rec.view.n] = rec.next_use
        obs.append(rec.view.observation(version))
        mask.append(rec.view.mask())
        label.append(rec.label)
        nus.append(nu)
        src.append((inst.task, inst.seed))
    if not obs:
        return _empty(k, version)
    return LabelSet(np.stack(obs), np.stack(mask), np.asarray(label, dtype=np.int64), np.stack(nus), src)


def _empty(k: int, version: int = 1) -> LabelSet:
    d = observation_size(k, version)
    return LabelSet(np.zeros((0, d), np.float32), np.zeros((0, k), bool), np.zeros(0, np.int64), np.zeros((0, k), np.int64))


def collect(
    instances,
    k: int,
    rule: str,
    rollout: Policy | None = None,
    stride: int = 1,
    teacher: str = "belady",
    executor=None,
    version: int = 1,
) -> LabelSet:
    """Labels every ``stride``-th decision of every suite instance (:class:`envs.benchmarks.Instance`).

    Args:
        executor: An :class:`eval.executor.Executor`; instances are labelled independently (identical results
            whichever executor runs them). None labels them here, one after another.
    """
    if teacher not in TEACHERS:
        raise ValueError(f"unknown teacher {teacher!r}; valid: {', '.join(TEACHERS)}")
    instances = list(instances)
    if executor is None or executor.kind == "serial" or len(instances) < 2:
        parts = [_label(inst, k, rule, rollout, stride, teacher, version) for inst in instances]
    else:
        parts = executor.map(_label_job, [(inst, k, rule, rollout, stride, teacher, version) for inst in instances])
    return LabelSet.concat([_empty(k, version), *parts])  # one copy, not one per instance
