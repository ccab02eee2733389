"""What every workload provides (presets, methods, one ``generate`` entry point) and what determines a trace.

Torch-free, so that suites, the env and the CLIs can name workloads and read the generator version without
loading torch; the captured generators import it when they run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from envs.trace import Trace

#: Bumped whenever a generator change could alter any trace it produces.
GENERATOR_VERSION = 2


class WorkloadError(ValueError):
    """Unknown workload, preset or method, or an invalid generator argument."""


@dataclass(frozen=True)
class TraceSpec:
    """Everything that determines a generated trace.

    Attributes:
        workload: Workload name (``transformer-train``, ...).
        preset: Preset name of that workload (``mistral-7b``, ...).
        layers: Depth override (None = the preset's own depth).
        iterations: Training steps or decode steps in the trace (None = the workload default).
        seed: Seed of every random draw (sequence lengths, batch, routing, branch order).
        method: ``captured`` (trace the real model on the meta device) or ``analytic``.
        batch: Largest per-step batch of a training workload (None = the workload's own choices); each step
            draws ``batch // 2`` or ``batch`` (see :meth:`Shape.capped`).
        requests: Concurrent requests of a serving workload (None = a seeded draw from the preset's choices).
    """

    workload: str
    preset: str
    layers: int | None = None
    iterations: int | None = None
    seed: int = 0
    method: str = "captured"
    batch: int | None = None
    requests: int | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k) for k in ("workload", "preset", "layers", "iterations", "seed", "method", "batch")}
        if self.requests is not None:  # only when set, so traces made before the knob keep their hashes
            out["requests"] = self.requests
        return out


class Workload(Protocol):
    """A family of traces."""

    name: str
    family: str
    description: str
    methods: tuple[str, ...]
    default_iterations: int

    def presets(self) -> dict[str, Any]: ...

    def generate(self, spec: TraceSpec) -> Trace: ...


@dataclass
class Shape:
    """Seeded per-iteration shape sampler: ``batch`` and ``seq`` are tuples of choices."""

    batch: tuple[int, ...]
    seq: tuple[int, ...]

    def draw(self, rng: np.random.Generator) -> tuple[int, int]:
        return int(rng.choice(self.batch)), int(rng.choice(self.seq))

    def capped(self, batch: int | None) -> Shape:
        """The same sampler with batch choices ``(batch // 2, batch)`` when ``batch`` is given."""
        if batch is None:
            return self
        return Shape(batch=tuple(sorted({max(batch // 2, 1), batch})), seq=self.seq)


def check_positive(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, (int, np.integer)) or value < 1):
        raise WorkloadError(f"{name} must be a positive integer, got {value!r}")


def base_meta(spec: TraceSpec, generator: str, config: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Metadata common to every generated trace."""
    return {
        "workload": spec.workload,
        "preset": spec.preset,
        "spec": spec.to_dict(),
        "config": config,
        "seed": spec.seed,
        "generator": generator,
        "generator_version": GENERATOR_VERSION,
        "method": spec.method,
        **extra,
    }
