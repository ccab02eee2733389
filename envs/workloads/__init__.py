"""Workload registry: every architecture family, its presets and one ``generate_trace`` entry point."""

from __future__ import annotations

from envs.trace import Trace
from envs.workloads.base import GENERATOR_VERSION, TraceSpec, Workload, WorkloadError, check_positive
from envs.workloads.cnn_train import CNNTrain
from envs.workloads.transformer_infer import MoEInfer, TransformerInfer
from envs.workloads.transformer_train import TransformerTrain

WORKLOADS: dict[str, Workload] = {w.name: w for w in (TransformerTrain(), TransformerInfer(), CNNTrain(), MoEInfer())}


def get_workload(name: str) -> Workload:
    """Returns the workload called ``name``.

    Raises:
        WorkloadError: Naming the valid workloads when ``name`` is unknown.
    """
    try:
        return WORKLOADS[name]
    except KeyError:
        raise WorkloadError(f"unknown workload {name!r}; valid: {', '.join(WORKLOADS)}") from None


def generate_trace(
    workload: str,
    preset: str,
    *,
    layers: int | None = None,
    iterations: int | None = None,
    seed: int = 0,
    method: str = "captured",
    batch: int | None = None,
) -> Trace:
    """Generates a trace (see :class:`TraceSpec` for the arguments).

    Raises:
        WorkloadError: On an unknown workload, preset or method, or a non-positive ``layers``/``iterations``.
    """
    w = get_workload(workload)
    presets = w.presets()
    if preset not in presets:
        raise WorkloadError(f"unknown preset {preset!r} for workload {workload!r}; valid: {', '.join(presets)}")
    if method not in w.methods:
        raise WorkloadError(f"workload {workload!r} has no {method!r} generator; valid: {', '.join(w.methods)}")
    check_positive("layers", layers)
    check_positive("iterations", iterations)
    check_positive("batch", batch)
    if batch is not None and not getattr(w, "has_batch", False):
        raise WorkloadError(f"workload {workload!r} has no batch option (training workloads do)")
    if not isinstance(seed, int) or seed < 0:
        raise WorkloadError(f"seed must be a non-negative integer, got {seed!r}")
    return w.generate(TraceSpec(workload, preset, layers, iterations, seed, method, batch))


__all__ = ["GENERATOR_VERSION", "WORKLOADS", "TraceSpec", "WorkloadError", "generate_trace", "get_workload"]
