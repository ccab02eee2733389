"""Bad capacities: every capacity spec is checked and resolved in one place, with a one-line error."""

from __future__ import annotations

import numpy as np
import pytest

from envs.sim import Headroom, SimError, parse_capacity, prepare, resolve_capacity
from envs.trace import Trace

CAPACITY_CASES = [
    ("zero", 0, "positive"),
    ("negative", -5, "positive"),
    ("above 2**62", 2**63 + 10, "2\\*\\*62"),
    ("huge string", "1e30GiB", "2\\*\\*62"),
    ("a bool", True, "byte count"),
    ("garbage", "12 parsecs", "does not parse"),
    ("a list", [1], "byte count"),
]


@pytest.mark.parametrize(("case", "value", "message"), CAPACITY_CASES, ids=[c[0] for c in CAPACITY_CASES])
def test_bad_capacities(case: str, value: object, message: str) -> None:
    with pytest.raises(SimError, match=message):
        parse_capacity(value)  # type: ignore[arg-type]


def test_capacity_specs_resolve_in_one_place(small_train_trace: Trace) -> None:
    prepared = prepare(small_train_trace)
    assert resolve_capacity(np.float32(0.9), prepared) == int(float(np.float32(0.9)) * prepared.peak_live_bytes)
    assert resolve_capacity(Headroom(0.0), prepared) == prepared.op_bytes_max
    for bad, message in ((1.5, r"\(0, 1\]"), (float("nan"), r"\(0, 1\]"), (100, "cannot hold op")):
        with pytest.raises(SimError, match=message):
            resolve_capacity(bad, prepared)
    with pytest.raises(SimError, match=r"\[0, 1\]"):
        Headroom(2.0)
