"""Your own trace as a benchmark instance: the same reference runs (LRU, the offline references, the certified
lower bound), rows, scores and step times as a suite's instances, for any trace at any capacity.

``evaluate(agent, trace=..., capacity=...)`` (:func:`eval.evaluate.evaluate`) and the leaderboard's row schema use
it; nothing about the trace is generated, so its content hash is all that identifies it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from envs.benchmarks.cache import default_cache_dir
from envs.benchmarks.suite import Family, Instance, Suite
from envs.sim.capacity import Headroom, resolve_capacity
from envs.sim.prepared import PreparedTrace, prepare
from envs.trace import Trace

#: The suites own-trace instances belong to: tensor mode is scored against the certified lower bound, like tcb-v2;
#: classic mode (no bound there) against Belady.
OWN_SUITES = {
    "tensor": Suite(name="own", version="1", families=(), headrooms=(), seeds={"own": (0,)}, anchor="lower-bound"),
    "classic": Suite(name="own", version="1", families=(), headrooms=(), seeds={"own": (0,)}, mode="classic"),
}


@dataclass(frozen=True)
class TraceInstance(Instance):
    """One capacity of one given trace, shaped like a suite instance (see :class:`Instance`).

    Attributes:
        source: The trace.
        capacity_spec: Bytes (int or ``"4GiB"``), a fraction of the peak live bytes, or a :class:`Headroom`.
        mode: ``tensor`` or ``classic``.
    """

    source: Trace
    capacity_spec: object

    @property
    def path(self) -> Path:
        """Where its reference runs are cached (by content hash; the trace itself is never written)."""
        return self.cache_dir / f"own_{self.source.content_hash[:24]}_{self.suite.mode}.npz"

    def trace(self) -> Trace:
        return self.source

    @cached_property
    def prepared(self) -> PreparedTrace:
        return prepare(self.source, self.suite.mode)

    @cached_property
    def capacity(self) -> int:
        return resolve_capacity(self.capacity_spec, self.prepared)

    @property
    def task(self) -> str:
        return f"{self.family.name}@{self.capacity}B"


def trace_instances(trace: Trace, capacities: Sequence[object] | object = Headroom(0.3), mode: str = "tensor",
                    name: str | None = None, cache_dir: Path | None = None) -> list[TraceInstance]:  # fmt: skip
    """One instance of ``trace`` per capacity (bytes, ``"4GiB"``, a fraction of the peak, or a :class:`Headroom`)."""
    caps = list(capacities) if isinstance(capacities, (list, tuple)) else [capacities]
    label = name or str(trace.meta.get("workload") or "trace")
    family = Family(label, "own", "-", None, None)
    out = []
    for spec in caps:
        if mode not in OWN_SUITES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(OWN_SUITES)}")
        inst = TraceInstance(OWN_SUITES[mode], family, 0.0, 0, "own", cache_dir or default_cache_dir(), trace, spec)
        prepared, cap = inst.prepared, inst.capacity
        span = prepared.peak_live_bytes - prepared.op_bytes_max
        headroom = (cap - prepared.op_bytes_max) / span if span > 0 else 1.0
        object.__setattr__(inst, "headroom", float(headroom))  # what the rows record: the capacity as a headroom
        out.append(inst)
    return out
