"""One evaluate for every kind of agent: a Policy, a plain callable over observations, an SB3 model."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import envs  # noqa: F401 - registers the env
from agents import make_policy
from envs.benchmarks import Suite
from envs.sim import Headroom
from eval.evaluate import evaluate
from tests.conftest import make_suite


@pytest.fixture(scope="module")
def tiny_suite() -> Suite:
    return make_suite("tiny", {"train": (0,), "validation": (5, 6)})


def test_references_score_zero_and_one(tiny_suite: Suite) -> None:
    lru = evaluate(make_policy("lru"), tiny_suite, "validation")
    belady = evaluate(make_policy("belady"), tiny_suite, "validation")
    assert [r["norm_byte_score"] for r in lru.rows] == [0.0, 0.0]
    assert [r["norm_byte_score"] for r in belady.rows] == [1.0, 1.0]
    assert lru.summary()["iqm"] == 0.0 and set(lru.per_task) == {"gpt2-serve@0.2"}


def test_a_callable_and_an_sb3_model_are_evaluated_like_policies(tiny_suite: Suite) -> None:
    # a callable that always evicts the least recently used offered candidate is LRU
    as_callable = evaluate(lambda obs: 0, tiny_suite, "validation", k=16, candidates="lru", name="first")
    assert [r["norm_byte_score"] for r in as_callable.rows] == [0.0, 0.0]
    assert as_callable.rows[0]["agent"] == "first"
    # callables decide from observations, so rollouts take the env's fused step: same choices as through views,
    # and each call gets an observation of its own (an agent may keep them)
    from agents.adapters import as_policy
    from agents.rollout import run_policy, start_episode

    seen: list[np.ndarray] = []

    def last_valid(obs: np.ndarray, mask: np.ndarray) -> int:
        seen.append(obs)
        return int(np.flatnonzero(mask)[-1])

    policy = as_policy(last_valid, k=16, rule="lru", name="last")
    for inst in tiny_suite.instances("validation"):
        fused = run_policy(inst.prepared, policy, inst.capacity, seed=inst.seed)
        episode = start_episode(inst.prepared, policy, inst.capacity, seed=inst.seed)
        assert episode.play(policy.choose) == fused.result and fused.decisions > 1
    assert len({o.tobytes() for o in seen}) > 2
    # an untrained SB3 model plays through the same path (k from its action space); its masked choices are valid
    from sb3_contrib import MaskablePPO

    env = gym.make("tensorcache/Eviction-v1", workload="transformer-infer", preset="gpt2-small", layers=1,
                   iterations=2, capacity=Headroom(0.5), k=8).unwrapped  # fmt: skip
    model = MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=0, verbose=0)
    res = evaluate(model, tiny_suite, "validation")
    assert len(res.rows) == 2 and all(np.isfinite(r["norm_byte_score"]) for r in res.rows)
    assert '"model_class": "MaskablePPO"' in res.rows[0]["agent_config"]
    with pytest.raises(TypeError, match="cannot evaluate"):
        evaluate(42, tiny_suite, "validation")


def test_readme_quickstart_runs() -> None:
    from tests.conftest import readme_example

    assert np.isfinite(readme_example("## Quickstart")["result"].score)


def test_an_agent_is_named_by_its_registry_name(tiny_suite: Suite) -> None:
    by_name = evaluate("schedule", tiny_suite, "validation")
    by_object = evaluate(make_policy("schedule"), tiny_suite, "validation")
    assert [r["bytes_moved"] for r in by_name.rows] == [r["bytes_moved"] for r in by_object.rows]
    with pytest.raises(ValueError, match="unknown agent 'nope'"):
        evaluate("nope", tiny_suite, "validation")
