"""Candidate networks played in compiled code (agents.compiled_net): whole runs and timelines make the torch path's
choices, for the shipped ppo and bc entries and a freshly initialised network, on training and serving traces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.candidate_net import CandidateNet, NetConfig
from agents.ppo import PPOPolicy
from agents.rollout import run_policy
from envs.gym.timeline import record
from envs.sim import headroom_capacity, prepare


def _policies() -> list[PPOPolicy]:
    from eval.leaderboard.entries import registry

    reg = registry()
    torch.manual_seed(3)
    fresh = PPOPolicy(CandidateNet(NetConfig(k=8, hidden=16)), "lru", name="fresh")
    return [reg.make("ppo"), reg.make("bc"), fresh]


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


def test_only_what_the_fused_step_serves_is_compiled() -> None:
    from eval.leaderboard.entries import registry

    assert registry().make("bc-v2").compiled is None  # observation version 2 steps in Python
    net = CandidateNet(NetConfig(k=8, hidden=16))
    assert PPOPolicy(net, "schedule").compiled is None
