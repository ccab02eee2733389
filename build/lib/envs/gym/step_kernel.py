"""The fused decision step: answer the pending decision, run to the next one, pick its candidates and write its
observation, in one compiled call.

:class:`envs.gym.episode.Episode` drives it through :meth:`~envs.gym.episode.Episode.step`; the Gymnasium env calls
that once per ``step()``. It computes exactly what the unfused path (``evict`` → ``advance`` →
``candidates`` → ``DecisionView.observation``) computes, with one compiled dispatch instead of four and no
intermediate Python objects (``tests/test_env.py`` checks both paths agree step by step).
"""

from __future__ import annotations

import numba

from envs.gym.features import ROW_NEXT_USE, ROW_OP, ROW_OP_END, ROW_OP_INDEX, ROW_TID, fill_observation_from_state
from envs.sim import engine as E

#: Candidate rule codes of :func:`decide` (positions in :data:`envs.sim.simulator.CANDIDATE_RULES`).
RULE_LRU, RULE_MIXED = 0, 1


@numba.njit(cache=True)
def decide(T, S, H, dense, block, k, rule, cands, victim, obs):  # pragma: no cover - compiled
    """Evicts ``victim`` (a tensor id; -1 = no pending decision), runs the trace in ``block``
    (:attr:`envs.gym.features.FeatureBuilder.block`) to the next decision or the end, and
    there fills ``cands`` with up to ``k`` candidates by ``rule`` and ``obs`` (zeroed) with the observation.

    Returns:
        The number of candidates written when a decision is pending, else -1 (the trace is done).
    """
    if victim >= 0:
        E.set_victim(S, victim)
    tid = block[ROW_TID]
    status = E.run(T, S, H, dense, tid, block[ROW_OP], block[ROW_OP_INDEX], block[ROW_OP_END], block[ROW_NEXT_USE],
                   tid.shape[0])  # fmt: skip
    if status != E.NEED_DECISION:
        return -1
    if rule == RULE_LRU:
        n = E.lru_candidates(T, S, k, cands)
    else:
        n = E.mixed_candidates(T, S, dense, k, cands)
    fill_observation_from_state(T, S, block, cands, n, k, obs)
    return n
