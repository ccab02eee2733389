"""Out-of-range options of the generators, training and exports, and observations inside their declared box."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from envs.sim import prepare
from tests.conftest import make_classic_trace


def test_observations_stay_inside_their_declared_box() -> None:
    """A 2 TiB tensor read 70,000 times still gives an observation inside Box(-1, 1)."""
    from envs.gym.episode import Episode

    n = 70_000
    ids = np.where(np.arange(n) % 2 == 0, 0, 1 + (np.arange(n) // 2) % 3)
    sizes = np.array([2**41, 2**40, 2**40, 2**40])
    trace = make_classic_trace(ids, sizes)
    episode = Episode(prepare(trace, "classic"), 2**41 + 2**40, k=4)
    seen = 0
    while not episode.advance() and seen < 50:
        obs = episode.view.observation()
        assert obs.min() >= -1.0 and obs.max() <= 1.0
        episode.evict(0)
        seen += 1
    assert seen > 0


def test_generator_refuses_decoding_past_gpt2_positions() -> None:
    from envs.workloads import WorkloadError, generate_trace

    with pytest.raises(WorkloadError, match="learned positions"):
        generate_trace("transformer-infer", "gpt2-small", layers=1, iterations=1000, seed=0)


def test_training_options_out_of_range_are_refused() -> None:
    from training.train_ppo import PPOConfig, check_config

    for field, value, message in (("n_envs", 0, "--n-envs"), ("total_timesteps", -5, "--total-timesteps"),
                                  ("max_instances", -1, "--max-instances")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            check_config(PPOConfig(**{field: value}))


def test_nan_weights_in_an_export_are_refused(tmp_path: Path) -> None:
    import torch

    from agents.candidate_net import CandidateNet, NetConfig
    from agents.ppo import PPOPolicy, export_policy

    net = CandidateNet(NetConfig(k=4, hidden=8))
    with torch.no_grad():
        next(iter(net.parameters())).fill_(float("nan"))
    export_policy(net, "lru", tmp_path)
    with pytest.raises(ValueError, match="NaN or infinite"):
        PPOPolicy.load(tmp_path)
