"""Benchmark suites (tasks, splits, reference runs) by name."""

from envs.benchmarks.suite import Family, Instance, Suite
from envs.benchmarks.tcb_v1 import TCB_V1
from envs.benchmarks.tcb_v2 import TCB_V2
from envs.benchmarks.tcb_v3 import TCB_V3

SUITES: dict[str, Suite] = {TCB_V2.name: TCB_V2, TCB_V3.name: TCB_V3, TCB_V1.name: TCB_V1}
DEFAULT_SUITE = TCB_V2.name


def get_suite(name: str) -> Suite:
    """The suite called ``name`` (ValueError listing the valid ones otherwise)."""
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; valid: {', '.join(SUITES)}") from None


__all__ = ["DEFAULT_SUITE", "SUITES", "TCB_V1", "TCB_V2", "TCB_V3", "Family", "Instance", "Suite", "get_suite"]
