"""The one place a training run is seeded: python, numpy and torch (and torch's CPU thread count)."""

from __future__ import annotations

import random

import numpy as np


def seed_everything(seed: int, threads: int) -> None:
    """Seeds python, numpy and torch with ``seed`` and sets torch's CPU threads (envs are seeded separately)."""
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
