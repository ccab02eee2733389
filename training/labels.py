"""Belady labels for imitation: at every eviction decision, the legal observation and the oracle's choice.

A rollout follows Belady itself, or (DAgger) any given policy while Belady labels the states that policy visits.
The label is the candidate Belady evicts among the K offered (farthest next use, ties least recent, then lowest
id); ``next_use`` keeps each candidate's distance to its next use for ranking losses (-1 = empty slot, NEVER =
not used again). Observations are the sealed views' (:class:`envs.features.DecisionView`) and hold no future information.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from agents.base import Policy
from agents.heuristics import Belady
from envs.episode import Episode
from envs.features import DecisionView, observation_size
from envs.sim.simulator import PreparedTrace


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
        return LabelSet(
            np.concatenate([self.obs, other.obs]),
            np.concatenate([self.mask, other.mask]),
            np.concatenate([self.label, other.label]),
            np.concatenate([self.next_use, other.next_use]),
            self.source + other.source,
        )


def iter_decisions(
    prepared: PreparedTrace,
    capacity: int,
    k: int,
    rule: str,
    rollout: Policy | None = None,
    task: str = "",
    seed: int = 0,
) -> Iterable[DecisionRecord]:
    """Replays one trace through the episode driver; yields a :class:`DecisionRecord` per eviction (before the
    victim is applied), then evicts Belady's choice or, with ``rollout``, that policy's."""
    episode = Episode(prepared, capacity, k=k, rule=rule, seed=seed)
    belady = Belady(episode.oracle)
    if rollout is not None:
        rollout.reset(seed)
        if rollout.uses_oracle:
            rollout.attach_oracle(episode.oracle)
    while not episode.advance():
        view = episode.view
        label = belady.choose(view)
        nu = episode.oracle.next_use(view.candidates) - view.now
        yield DecisionRecord(task, seed, episode.n_decisions, label, nu, view)
        episode.evict(label if rollout is None else rollout.choose(view))


def collect(instances, k: int, rule: str, rollout: Policy | None = None, stride: int = 1) -> LabelSet:
    """Labels every ``stride``-th decision of every suite instance (:class:`envs.benchmarks.Instance`)."""
    obs, mask, label, nus, src = [], [], [], [], []
    for inst in instances:
        for rec in iter_decisions(inst.prepared, inst.capacity, k, rule, rollout, inst.task, inst.seed):
            if rec.step % stride:
                continue
            m = rec.view.mask()
            nu = np.full(k, -1, dtype=np.int64)
            nu[: rec.view.n] = rec.next_use
            obs.append(rec.view.observation())
            mask.append(m)
            label.append(rec.label)
            nus.append(nu)
            src.append((inst.task, inst.seed))
    if not obs:
        d = observation_size(k)
        return LabelSet(np.zeros((0, d), np.float32), np.zeros((0, k), bool), np.zeros(0, np.int64), np.zeros((0, k), np.int64))
    return LabelSet(np.stack(obs), np.stack(mask), np.asarray(label, dtype=np.int64), np.stack(nus), src)
