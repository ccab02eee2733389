"""Shared fixtures: small traces built once per session."""

from __future__ import annotations

import numpy as np
import pytest

from envs.trace import Trace, classic_trace
from envs.workloads import generate_trace


def make_classic_trace(ids: np.ndarray, sizes_by_id: np.ndarray) -> Trace:
    return classic_trace(ids, sizes_by_id[ids], {"workload": "synthetic"})


@pytest.fixture(scope="session")
def small_train_trace() -> Trace:
    return generate_trace("transformer-train", "mistral-7b", layers=2, iterations=2, seed=0)


@pytest.fixture(scope="session")
def small_serve_trace() -> Trace:
    return generate_trace("transformer-infer", "gpt2-small", layers=2, iterations=3, seed=0)
