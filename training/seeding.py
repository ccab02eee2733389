"""The one place a training run is seeded: python, numpy and torch through SB3's ``set_random_seed`` (the seeds its
own recipes use), and torch's CPU thread count."""

from __future__ import annotations


def seed_everything(seed: int, threads: int) -> None:
    """Seeds python, numpy and torch with ``seed`` and sets torch's CPU threads (envs are seeded separately)."""
    import torch
    from stable_baselines3.common.utils import set_random_seed

    set_random_seed(seed)
    torch.set_num_threads(threads)
