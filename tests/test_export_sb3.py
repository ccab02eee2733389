"""An SB3 model becomes a leaderboard entry with one command (``tensorcache-export-sb3``): the entry plays exactly the
model's deterministic masked actions, for SB3's MlpPolicy and the project's CandidateActorCriticPolicy, and a
model file carrying a pickled object is refused without running it."""

from __future__ import annotations

import io
import json
import pickle
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import envs  # noqa: F401 - registers the env
from agents.ppo import PPOPolicy
from envs.sim import Headroom
from training.export_sb3 import main


def _env(version: int = 1, k: int = 8):
    return gym.make(f"tensorcache/Eviction-v{version}", workload="transformer-infer", preset="gpt2-small", layers=1,
                    iterations=2, capacity=Headroom(0.5), k=k).unwrapped  # fmt: skip


def _same_actions(model, policy: PPOPolicy, env, steps: int = 300) -> int:
    obs, _ = env.reset(seed=3)
    checked = 0
    for _ in range(steps):
        mask = env.action_masks()
        want, _ = model.predict(obs, action_masks=mask, deterministic=True)
        got = policy.choose_observations(obs[None, :].copy(), np.array([int(mask.sum())]))[0]
        assert got == int(want)
        checked += 1
        obs, _, term, _, _ = env.step(got)
        if term:
            break
    return checked


@pytest.mark.parametrize("kind", ["mlp", "candidate"])
def test_an_sb3_model_becomes_an_entry_that_plays_its_actions(tmp_path: Path, kind: str, capsys) -> None:
    from sb3_contrib import MaskablePPO

    version = 1 if kind == "mlp" else 2
    env = _env(version)
    if kind == "mlp":
        kwargs = {"activation_fn": torch.nn.ReLU, "net_arch": [32, 16]}
        model = MaskablePPO("MlpPolicy", env, n_steps=64, batch_size=32, seed=0, verbose=0, policy_kwargs=kwargs)
    else:
        from training.ppo_policy import CandidateActorCriticPolicy

        model = MaskablePPO(CandidateActorCriticPolicy, env, n_steps=64, batch_size=32, seed=0, verbose=0,
                            policy_kwargs={"hidden": 16})  # fmt: skip
    model.learn(128)
    model.save(tmp_path / "model.zip")
    out = tmp_path / "entries" / "my-agent"
    assert main([str(tmp_path / "model.zip"), "--out", str(out)]) == 0
    spec = json.loads((out / "policy.json").read_text())
    assert spec["format"] == ("tensorcache-mlp-actor" if kind == "mlp" else "tensorcache-candidate-net")
    assert spec["candidates"] == ("lru" if version == 1 else "schedule")
    policy = PPOPolicy.load(out)
    assert policy.observation_version == version and policy.candidate_k == 8
    assert _same_actions(model, policy, _env(version)) > 50
    # the leaderboard finds it with --entries and scores it
    from eval.evaluate import evaluate
    from eval.leaderboard.entries import discover, registry
    from tests.conftest import make_suite

    reg = registry(discovery=discover(extra=(out.parent,)))
    assert reg.kind("my-agent") == "learned"
    rows = evaluate(reg.make("my-agent"), make_suite("sb3", {"validation": (5,)}), "validation").rows
    assert rows[0]["agent"] == "my-agent" and rows[0]["n_req"] > 0
    assert main([str(tmp_path / "model.zip"), "--out", str(out)]) == 2  # an existing folder needs --force
    assert "--force" in capsys.readouterr().err


class _Payload:
    def __reduce__(self):
        return (Path.write_text, (Path(_Payload.target), "ran"))


def test_a_pickled_object_in_the_model_is_refused_unrun(tmp_path: Path, capsys) -> None:
    from sb3_contrib import MaskablePPO

    model = MaskablePPO("MlpPolicy", _env(), n_steps=64, batch_size=32, seed=0, verbose=0)
    model.save(tmp_path / "model.zip")
    _Payload.target = str(tmp_path / "pwned")
    planted = tmp_path / "planted.zip"
    with zipfile.ZipFile(tmp_path / "model.zip") as src, zipfile.ZipFile(planted, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "policy.pth":
                buf = io.BytesIO()
                torch.save({"action_net.weight": _Payload()}, buf, pickle_protocol=pickle.HIGHEST_PROTOCOL)
                data = buf.getvalue()
            dst.writestr(item, data)
    assert main([str(planted), "--out", str(tmp_path / "e")]) == 2
    assert "holds more than tensors" in capsys.readouterr().err
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "junk.zip").write_bytes(b"PK junk")
    assert main([str(tmp_path / "junk.zip"), "--out", str(tmp_path / "e")]) == 2
    assert "not a zip file" in capsys.readouterr().err
