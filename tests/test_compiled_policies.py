"""Candidate networks played in compiled code (agents.compiled_net): whole runs and timelines make the torch path's
choices, for the shipped ppo and bc entries and a freshly initialised network, on training and serving traces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.candidate_net import CandidateNet, NetConfig
from agents.ppo import PPOPolicy
from agents.rollout import run_policy
from envs.gym.features import feature_tables
from envs.gym.timeline import record
from envs.sim import headroom_capacity, prepare


def _policies() -> list[PPOPolicy]:
    from eval.leaderboard.entries import registry

    reg = registry()
    torch.manual_seed(3)
    fresh = PPOPolicy(CandidateNet(NetConfig(k=8, hidden=16)), "lru", name="fresh")
    fresh_v2 = PPOPolicy(CandidateNet(NetConfig(k=8, hidden=16, n_cand_features=len(feature_tables(2)[0]),
                                                n_global_features=len(feature_tables(2)[1]))),
                         "schedule", name="fresh-v2", observation_version=2)  # fmt: skip
    return [reg.make("ppo"), reg.make("bc"), reg.make("bc-v2"), fresh, fresh_v2]


@pytest.mark.parametrize("trace_name", ["small_train_trace", "small_serve_trace"])
def test_compiled_networks_choose_as_torch_does(trace_name: str, request: pytest.FixtureRequest) -> None:
    prepared = prepare(request.getfixturevalue(trace_name))
    for policy in _policies():
        assert policy.compiled is not None, policy.name
        for headroom in (0.05, 0.4):
            cap = headroom_capacity(prepared, headroom)
            fast, slow = run_policy(prepared, policy, cap), run_policy(prepared, policy, cap, fast=False)
            assert fast.result == slow.result and fast.decisions == slow.decisions > 0, (policy.name, headroom)
        compiled = record(prepared, cap, choose=policy.choose, k=policy.candidate_k, rule=policy.candidate_rule,
                          points=5, compiled=policy.compiled)  # fmt: skip
        driven = record(prepared, cap, choose=policy.choose, k=policy.candidate_k, rule=policy.candidate_rule, points=5)
        assert compiled[0] == driven[0]
        for a, b in zip(compiled[1].__dict__.values(), driven[1].__dict__.values(), strict=True):
            np.testing.assert_array_equal(a, b)


def test_exported_mlp_actors_stay_on_the_torch_path() -> None:
    from agents.mlp_actor import MLPActor, MLPConfig

    actor = MLPActor(MLPConfig(k=8, widths=(8 * 17 + 12, 16, 8), activation="relu", n_cand_features=17,
                               n_global_features=12))  # fmt: skip
    assert PPOPolicy(actor, "lru").compiled is None
