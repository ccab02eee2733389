"""Workload registry: every architecture family, its presets and one ``generate_trace`` entry point.

The generators (which import torch) load on first use, so importing this package stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envs.workloads.spec import GENERATOR_VERSION, TraceSpec, Workload, WorkloadError, check_positive

if TYPE_CHECKING:
    from envs.trace import Trace

#: Workload names, in the order help texts list them.
WORKLOAD_NAMES = ("transformer-train", "transformer-infer", "cnn-train", "moe-infer")


def workloads() -> dict[str, Workload]:
    """Every workload by name (imports the generators, and so torch)."""
    from envs.workloads.cnn_train import CNNTrain
    from envs.workloads.transformer_infer import MoEInfer, TransformerInfer
    from envs.workloads.transformer_train import TransformerTrain

    return {w.name: w for w in (TransformerTrain(), TransformerInfer(), CNNTrain(), MoEInfer())}


def __getattr__(name: str):
    if name == "WORKLOADS":
        return workloads()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def get_workload(name: str) -> Workload:
    """Returns the workload called ``name``.

    Raises:
        WorkloadError: Naming the valid workloads when ``name`` is unknown.
    """
    if name not in WORKLOAD_NAMES:
        raise WorkloadError(f"unknown workload {name!r}; valid: {', '.join(WORKLOAD_NAMES)}")
    return workloads()[name]


def _preset(workload: str, preset: str) -> tuple[Workload, object]:
    """The workload and the config of its preset ``preset`` (WorkloadError naming the valid ones otherwise)."""
    w = get_workload(workload)
    presets = w.presets()
    if preset not in presets:
        raise WorkloadError(f"unknown preset {preset!r} for workload {workload!r}; valid: {', '.join(presets)}")
    return w, presets[preset]


def generate_trace(
    workload: str,
    preset: str,
    *,
    layers: int | None = None,
    iterations: int | None = None,
    seed: int = 0,
    method: str = "captured",
    batch: int | None = None,
    requests: int | None = None,
) -> Trace:
    """Generates a trace (see :class:`TraceSpec` for the arguments).

    Raises:
        WorkloadError: On an unknown workload, preset or method, or a non-positive ``layers``/``iterations``.
    """
    w, _ = _preset(workload, preset)
    if method not in w.methods:
        raise WorkloadError(f"workload {workload!r} has no {method!r} generator; valid: {', '.join(w.methods)}")
    check_positive("layers", layers)
    check_positive("iterations", iterations)
    check_positive("batch", batch)
    if batch is not None and not getattr(w, "has_batch", False):
        raise WorkloadError(f"workload {workload!r} has no batch option (training workloads do)")
    check_positive("requests", requests)
    if requests is not None and not getattr(w, "has_requests", False):
        raise WorkloadError(f"workload {workload!r} has no requests option (serving workloads do)")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise WorkloadError(f"seed must be a non-negative integer, got {seed!r}")
    return w.generate(TraceSpec(workload, preset, layers, iterations, seed, method, batch, requests))


def estimate_accesses(
    workload: str,
    preset: str,
    *,
    layers: int | None = None,
    iterations: int | None = None,
    seed: int = 0,
    method: str = "captured",
    batch: int | None = None,
    requests: int | None = None,
) -> int:
    """About how many accesses :func:`generate_trace` with these arguments would record, from four small traces of
    the same workload (the fewest blocks it allows and one more, one and two iterations) fitted bilinearly in blocks
    and iterations: seconds instead of minutes, so a server can refuse a request before generating it.

    Raises:
        WorkloadError: As :func:`generate_trace`.
    """
    w, cfg = _preset(workload, preset)
    blocks = getattr(cfg, "blocks", None)
    first = cfg.n_layers - blocks[2] + 1 if blocks is not None else 1  # a ResNet keeps stages 1, 2 and 4 whole
    n_layers, n_iter = layers or cfg.n_layers, iterations or w.default_iterations

    def count(n: int, it: int) -> int:
        return len(generate_trace(workload, preset, layers=n, iterations=it, seed=seed, method=method, batch=batch,
                                  requests=requests))  # fmt: skip

    a11, a21, a12, a22 = count(first, 1), count(first + 1, 1), count(first, 2), count(first + 1, 2)
    per_block_iter = a22 - a12 - a21 + a11
    per_block = a21 - a11 - per_block_iter
    per_iter = a12 - a11 - per_block_iter * first
    base = a11 - per_block * first - per_iter - per_block_iter * first
    return max(int(base + per_block * n_layers + per_iter * n_iter + per_block_iter * n_layers * n_iter), 0)


__all__ = [
    "GENERATOR_VERSION",
    "WORKLOAD_NAMES",
    "TraceSpec",
    "WorkloadError",
    "estimate_accesses",
    "generate_trace",
    "get_workload",
    "workloads",
]
