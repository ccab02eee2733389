"""The recipes of docs/ARCHITECTURE.md, each followed with a toy: a new legal policy, a new workload, a new learned
agent (an entry folder), and the feature table as the one source of the observation's layout."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from agents.base import ScorerPolicy
from agents.registry import AgentSpec, builtin_registry
from envs.gym.eviction_env import EvictionEnv
from envs.gym.features import (
    CANDIDATE_FEATURES,
    GLOBAL_FEATURES,
    N_CAND_FEATURES,
    N_GLOBAL_FEATURES,
    candidate_feature,
    feature_tables,
    global_feature,
    observation_size,
    split_observation,
)
from envs.sim import headroom_capacity, prepare, simulate
from envs.trace import COLUMNS, Trace
from envs.workloads.spec import TraceSpec, Workload, base_meta
from eval.evaluate import evaluate
from tests.conftest import make_suite

ROOT = Path(__file__).resolve().parent.parent


class LargestFirst(ScorerPolicy):
    """Toy legal policy: evict the largest candidate (ties: least recent)."""

    name = "largest-first"

    def score(self, view) -> np.ndarray:
        return -view.size.astype(np.float64) + view.last_access / (view.now + 1.0)


def test_recipe_a_legal_policy_in_python_plays_through_the_episode_driver() -> None:
    reg = builtin_registry()
    reg.register(AgentSpec("largest-first", LargestFirst, source="tests"))
    policy = reg.make("largest-first")
    assert policy.engine_policy is None  # no engine code: the episode driver plays it
    suite = make_suite("recipe", {"validation": (5,)}, anchor="lower-bound")
    result = evaluate(policy, suite, "validation")
    lru = evaluate(reg.make("lru"), suite, "validation")
    assert [r["agent"] for r in result.rows] == ["largest-first"]
    assert result.rows[0]["bytes_moved"] != lru.rows[0]["bytes_moved"]  # it really chose differently
    assert result.rows[0]["bytes_moved"] >= result.rows[0]["anchor_bytes"]  # the certified bound holds


class TinyMLPTrain:
    """Toy workload: training steps of a 3-block MLP, captured on the meta device."""

    name = "tiny-mlp-train"
    family = "MLP, training"
    description = "forward + backward + AdamW of a small MLP"
    methods = ("captured",)
    default_iterations = 2

    def presets(self) -> dict[str, Any]:
        return {"w64": 64, "w128": 128}

    def generate(self, spec: TraceSpec) -> Trace:
        from envs.capture import capture

        width = self.presets()[spec.preset]
        torch.manual_seed(spec.seed)
        model = nn.Sequential(*(nn.Linear(width, width) for _ in range(spec.layers or 3)))
        trace = capture(model, lambda step: torch.empty(16, width, device="meta"), train=True,
                        steps=spec.iterations or self.default_iterations)  # fmt: skip
        meta = {**trace.meta, **base_meta(spec, self.name, {"width": width}, {})}
        return Trace.from_arrays({c: getattr(trace, c) for c in COLUMNS}, meta)


def test_recipe_a_workload_follows_the_protocol_and_runs_everywhere() -> None:
    workload: Workload = TinyMLPTrain()
    for member in ("name", "family", "description", "methods", "default_iterations", "presets", "generate"):
        assert hasattr(workload, member), member
    trace = workload.generate(TraceSpec(workload.name, "w64", 3, 2, 0, "captured", None, None))
    assert trace.meta["workload"] == "tiny-mlp-train" and trace.meta["generator"] == "tiny-mlp-train"
    prepared = prepare(trace)
    cap = headroom_capacity(prepared, 0.3)
    assert simulate(prepared, "lru", cap).bytes_moved >= simulate(prepared, "belady", cap).bytes_moved
    env = gym.make("tensorcache/Eviction-v1", trace=trace, capacity=cap, k=4)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (observation_size(4),)
    env.close()


def test_recipe_a_learned_agent_is_an_entry_folder(tmp_path: Path) -> None:
    from agents.candidate_net import CandidateNet, NetConfig
    from agents.ppo import export_policy
    from eval.leaderboard.entries import registry

    torch.manual_seed(0)
    folder = tmp_path / "toy-net"
    export_policy(CandidateNet(NetConfig(k=4, hidden=8)), "lru", folder, name="toy-net")
    (folder / "entry.json").write_text(json.dumps({"name": "toy-net", "kind": "exported-net", "deterministic": True}))
    (folder / "README.md").write_text("A toy, untrained network.\n")
    reg = registry(tmp_path)
    assert "toy-net" in reg and reg.spec("toy-net").kind == "exported-net"
    rows = evaluate(reg.make("toy-net"), make_suite("recipe", {"validation": (5,)}), "validation").rows
    assert rows[0]["agent"] == "toy-net" and rows[0]["n_req"] > 0


def test_recipe_the_feature_table_is_the_one_source_of_the_layout() -> None:
    assert [candidate_feature(n) for n in CANDIDATE_FEATURES] == list(range(N_CAND_FEATURES))
    assert [global_feature(n) for n in GLOBAL_FEATURES] == list(range(N_GLOBAL_FEATURES))
    for k in (1, 4, 16):
        assert observation_size(k) == k * N_CAND_FEATURES + N_GLOBAL_FEATURES
        table, globals_ = split_observation(np.zeros((2, observation_size(k))), k)
        assert table.shape == (2, k, N_CAND_FEATURES) and globals_.shape == (2, N_GLOBAL_FEATURES)
    # the env's documented table names every feature of the tables, in their order (one-hot blocks as ``kind_*``)
    # (version 1's table, then version 2's additions; one-hot blocks as ``kind_*``, ``phase_*``)
    documented = re.findall(r"^\s*\| ``([a-z0-9_*]+)`` \|", EvictionEnv.__doc__, re.M)
    (cand2, glob2), n1, g1 = feature_tables(2), len(CANDIDATE_FEATURES), len(GLOBAL_FEATURES)
    names = (*CANDIDATE_FEATURES, *GLOBAL_FEATURES, *cand2[n1:], *glob2[g1:])
    collapse = [re.sub(r"(kind|phase)_[a-z_]+$", r"\1_*", n) for n in names]
    assert documented == list(dict.fromkeys(collapse))
    assert cand2[:n1] == CANDIDATE_FEATURES and glob2[:g1] == GLOBAL_FEATURES  # version 2 keeps version 1's offsets
    # the README uses names and observation_size(), never literal widths
    readme = (ROOT / "README.md").read_text()
    assert not re.search(r"\b\d+ \* 17\b|\bK×17\b|reshape\(\d+, 17\)", readme)


def test_recipe_short_episodes_for_a_short_sb3_run() -> None:
    """gym.make(..., max_episode_steps=N) truncates at N decisions, so SB3's Monitor reports episodes early."""
    from stable_baselines3.common.monitor import Monitor

    env = Monitor(gym.make("tensorcache/Eviction-v1", task="gpt2-serve@0.3", max_episode_steps=40))
    env.reset(seed=0)
    steps, term, trunc = 0, False, False
    while not (term or trunc):
        _, _, term, trunc, info = env.step(0)
        steps += 1
    assert (steps, trunc, term) == (40, True, False) and info["episode"]["l"] == 40
