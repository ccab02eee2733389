"""A candidate-scoring network played in compiled code: the actor of :class:`~agents.candidate_net.CandidateNet`
(two tanh layers and a linear head, shared by every candidate row) evaluated inside the loop of the env's fused
step (:func:`envs.gym.step_kernel.decide_any`), so a whole run makes no torch call and no Python call per decision.

It serves every candidate rule and observation version (the fused step serves them all). Its arithmetic is
float64 where torch's is float32; the greedy choices agree with the torch path (tested), and a near-tie that
rounding could flip would be the only difference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numba
import numpy as np

from envs.gym.features import FeatureBuilder, observation_size
from envs.gym.step_kernel import decide_any
from envs.sim.simulator import CANDIDATE_RULES

if TYPE_CHECKING:
    from agents.candidate_net import CandidateNet
    from envs.sim.prepared import PreparedTrace
    from envs.sim.simulator import Simulation


@numba.njit(cache=True, nogil=True)
def play_candidate_net(T, S, H, dense, block, k, rule, cands, w1c, w1g, b1, w2, b2, w3, obs, extra):  # pragma: no cover
    """Answers every decision up to the end of ``block`` (a prefix of :attr:`FeatureBuilder.block` stops earlier)
    with the network's greedy choice, the fused step (:func:`envs.gym.step_kernel.decide_any`, ``extra`` its
    trailing arguments) writing each observation; returns the decisions answered. ``w1c`` / ``w1g``: the first layer's columns
    for the candidate features and for the global features, transposed (the globals' part is computed once per
    decision); the layers run as matrix products over the decision's candidate rows (BLAS)."""
    nc, ng = w1c.shape[0], w1g.shape[0]
    rows = np.zeros((k, nc))
    glob = np.zeros((1, ng))
    victim, decisions = -1, 0
    while True:
        obs[:] = 0.0
        n = decide_any(T, S, H, dense, block, k, rule, cands, victim, obs, *extra)
        if n < 0:
            return decisions
        for i in range(n):
            for f in range(nc):
                rows[i, f] = obs[i * nc + f]
        for f in range(ng):
            glob[0, f] = obs[k * nc + f]
        shared = np.dot(glob, w1g)[0] + b1
        h1 = np.tanh(np.dot(rows[:n], w1c) + shared)
        h2 = np.tanh(np.dot(h1, w2) + b2)
        logits = np.dot(h2, w3)
        best = 0
        for i in range(1, n):
            if logits[i] > logits[best]:
                best = i
        victim = cands[best]
        decisions += 1


class CompiledCandidateNet:
    """A :class:`~agents.candidate_net.CandidateNet`'s greedy policy over one prepared trace, every decision in
    compiled code (``play(simulation, stop)``, the interface of :attr:`agents.base.Policy.compiled`)."""

    def __init__(self, net: CandidateNet, k: int, rule: str, prepared: PreparedTrace, version: int = 1) -> None:
        nc = net.cfg.n_cand_features
        params = {name: p.detach().double().numpy() for name, p in net.named_parameters()}
        w1 = params["actor_body.0.weight"]
        # transposed for row-vector products; the head's bias, the same for every candidate, cannot change the argmax
        self.weights = (np.ascontiguousarray(w1[:, :nc].T), np.ascontiguousarray(w1[:, nc:].T), params["actor_body.0.bias"],
                        np.ascontiguousarray(params["actor_body.2.weight"].T), params["actor_body.2.bias"],
                        np.ascontiguousarray(params["actor_head.weight"][0]))  # fmt: skip
        self.k, self.rule = k, CANDIDATE_RULES.index(rule) if rule in CANDIDATE_RULES else -1  # -1: schedule
        features = FeatureBuilder(prepared)
        self.block, self._extra = features.block, features.fused_scratch(k, version)
        self._cands = np.empty(k, dtype=np.int64)
        self._obs = np.zeros(observation_size(k, version), dtype=np.float32)

    def play(self, sim: Simulation, stop: int | None = None) -> int:
        """Runs ``sim`` (paused, on this trace) to access ``stop`` (default: the end); returns the decisions."""
        block = self.block if stop is None else self.block[:, : int(stop)]
        return int(play_candidate_net(sim.T, sim.S, sim.H, sim.dense, block, self.k, self.rule, self._cands,
                                      *self.weights, self._obs, self._extra))  # fmt: skip
