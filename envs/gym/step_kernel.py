"""The fused decision step: answer the pending decision, run to the next one, pick its candidates and write its
observation, in one compiled call.

:class:`envs.gym.episode.Episode` drives it through :meth:`~envs.gym.episode.Episode.step`; the Gymnasium env calls
that once per ``step()``. It computes exactly what the unfused path (``evict`` → ``advance`` →
``candidates`` → ``DecisionView.observation``) computes, with one compiled dispatch instead of four and no
intermediate Python objects (``tests/test_env.py`` checks both paths agree step by step).
"""

from __future__ import annotations

import numba
import numpy as np

from envs.gym.features import (
    C_LAST_PHASE,
    C_SCHEDULE_CHOICE,
    C_SCHEDULE_DEAD,
    C_SCHEDULE_LOG2_DISTANCE,
    C_SCHEDULE_NEXT_READ,
    G_HAS_PREVIOUS_ITERATION,
    G_LOG2_POSITION_IN_PHASE,
    G_PHASE,
    N_CAND_FEATURES,
    N_CAND_FEATURES_V2,
    N_GLOBAL_FEATURES,
    ROW_NEXT_USE,
    ROW_OP,
    ROW_OP_END,
    ROW_OP_INDEX,
    ROW_TID,
    fill_observation_from_state,
)
from envs.gym.schedule import DEAD, _ahead, _distances, schedule_first_k
from envs.sim import engine as E

#: Candidate rule codes of :func:`decide` (positions in :data:`envs.sim.simulator.CANDIDATE_RULES`).
RULE_LRU, RULE_MIXED = 0, 1


@numba.njit(cache=True, inline="always")
def _to_next_decision(T, S, H, dense, block, victim):  # pragma: no cover - compiled
    """Evicts ``victim`` (-1: none) and runs ``block`` to the next decision (True) or its end (False)."""
    if victim >= 0:
        E.set_victim(S, victim)
    tid = block[ROW_TID]
    status = E.run(T, S, H, dense, tid, block[ROW_OP], block[ROW_OP_INDEX], block[ROW_OP_END], block[ROW_NEXT_USE],
                   tid.shape[0])  # fmt: skip
    return status == E.NEED_DECISION


@numba.njit(cache=True)
def decide(T, S, H, dense, block, k, rule, cands, victim, obs):  # pragma: no cover - compiled
    """Evicts ``victim`` (a tensor id; -1 = no pending decision), runs the trace in ``block``
    (:attr:`envs.gym.features.FeatureBuilder.block`) to the next decision or the end, and
    there fills ``cands`` with up to ``k`` candidates by ``rule`` and ``obs`` (zeroed) with the observation.

    Returns:
        The number of candidates written when a decision is pending, else -1 (the trace is done).
    """
    if not _to_next_decision(T, S, H, dense, block, victim):
        return -1
    if rule == RULE_LRU:
        n = E.lru_candidates(T, S, k, cands)
    else:
        n = E.mixed_candidates(T, S, dense, k, cands)
    fill_observation_from_state(T, S, block, cands, n, k, obs)
    return n


@numba.njit(cache=True)
def decide_any(T, S, H, dense, block, k, rule, cands, victim, obs, version, tables, everyone, last, interval, dist, pred,
               scratch, phase, phase_start, iteration):  # fmt: skip  # pragma: no cover - compiled
    """:func:`decide` for every candidate rule (``rule`` < 0: ``schedule``) and observation version: the same
    step, with version 2's columns (the schedule's predictions of the candidates and the phases) written after
    version 1's, as :meth:`envs.gym.features.DecisionView.observation` writes them.

    Args:
        tables: The compiled predictor's tables (:class:`envs.gym.schedule.SchedulePredictor`).
        everyone, last, interval, dist: Scratch of one slot per tensor (the ``schedule`` rule ranks them all).
        pred: (2, k) scratch for the candidates' predictions; scratch: a version 1 observation's worth.
        phase, phase_start, iteration: :class:`envs.gym.features.FeatureBuilder`'s per-access columns.
    """
    if not _to_next_decision(T, S, H, dense, block, victim):
        return -1
    if rule < 0:
        n = schedule_first_k(T, S, dense, k, cands, tables, everyone, last, interval, dist, pred)
    else:
        n = E.lru_candidates(T, S, k, cands) if rule == RULE_LRU else E.mixed_candidates(T, S, dense, k, cands)
        if version != 1:
            for j in range(n):
                last[j] = E.tensor_last_access(T, cands[j])
                interval[j] = E.tensor_reuse_interval(T, cands[j])
            _distances(E.now(S), cands[:n], last[:n], interval[:n], *tables, pred[:, :n])
    if version == 1:
        fill_observation_from_state(T, S, block, cands, n, k, obs)
        return n
    scratch[:] = 0.0
    fill_observation_from_state(T, S, block, cands, n, k, scratch)
    w1, w2 = N_CAND_FEATURES, N_CAND_FEATURES_V2
    for j in range(k):
        for f in range(w1):
            obs[j * w2 + f] = scratch[j * w1 + f]
    for f in range(N_GLOBAL_FEATURES):
        obs[k * w2 + f] = scratch[k * w1 + f]
    first, fr, fd, fl, ft = -1, 0.0, 0.0, 0, 0  # the preferred candidate (the schedule heuristic's among these)
    for j in range(n):
        t = cands[j]
        d, rd = pred[0, j], pred[1, j]
        b = j * w2
        lj = E.tensor_last_access(T, t)
        if d >= DEAD / 2:
            obs[b + C_SCHEDULE_LOG2_DISTANCE] = 1.0
            obs[b + C_SCHEDULE_DEAD] = 1.0
        else:
            obs[b + C_SCHEDULE_LOG2_DISTANCE] = min(max(np.log2(1.0 + max(d, 0.0)) / 24.0, 0.0), 1.0)
        obs[b + C_SCHEDULE_NEXT_READ] = rd
        obs[b + C_LAST_PHASE + phase[lj]] = 1.0
        r = ((1.0 if E.tensor_dirty(T, t) > 0 else 0.0) + rd) / max(d, 1.0)
        if first < 0 or _ahead(r, d, lj, t, fr, fd, fl, ft):
            first, fr, fd, fl, ft = j, r, d, lj, t
    if first >= 0:
        obs[first * w2 + C_SCHEDULE_CHOICE] = 1.0
    now = E.now(S)
    pos = min(now, block.shape[1] - 1)
    g = k * w2
    obs[g + G_PHASE + phase[pos]] = 1.0
    obs[g + G_LOG2_POSITION_IN_PHASE] = min(np.log2(1.0 + float(now - phase_start[pos])) / 24.0, 1.0)
    obs[g + G_HAS_PREVIOUS_ITERATION] = 1.0 if iteration[pos] > 0 else 0.0
    return n
