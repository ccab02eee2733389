"""How long a training or serving step takes on a given accelerator, for any run of the engine.

The model, in full:

1. Every op of the trace runs on the accelerator for ``max(FLOPs / (e_c · peak FLOP/s of the trace's dtype),
   bytes touched / (e_m · memory bandwidth))`` — a roofline with efficiencies ``e_c`` (0.7: large matmuls reach
   60–80% of peak) and ``e_m`` (0.8: streaming kernels reach 80–90% of peak bandwidth). FLOPs and bytes per op
   come from the trace (:data:`envs.trace.COST_COLUMNS`, recorded at capture).
2. Before an op runs, the tensors it misses are fetched over the host link and its victims' dirty bytes are written
   back. The link is full duplex, so the two directions run at once and the op waits
   ``max(bytes fetched, bytes written back) / (e_l · link bandwidth)`` (``e_l`` = 0.8: pinned copies reach ~80%
   of the link's peak). That is the run's ``stall_bytes``, summed op by op by the engine.
3. Nothing else overlaps: transfers are on demand (these policies choose victims, they do not prefetch), so an op
   cannot start before its inputs arrive, and a fetch cannot land before the space it fills is written out.
4. A step is one iteration of the trace; the first one is left out (it fetches the weights cold, and in serving
   it is the prefill), so ``step_s`` is the mean steady-state iteration: (compute + stalls) / steps.

Limits: no kernel-launch or framework overhead, no compute/transfer overlap that a prefetching runtime would add,
one dtype per trace, one link shared by nothing else. The speed-up of a policy over LRU in step time is
``step_s(LRU) / step_s(policy)``: compute is the same for both, so it lies between 1 and the ratio of their stall
bytes (and can differ from the ratio of bytes moved, which also counts the first iteration and both directions).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from envs.sim.accelerators import get_accelerator
from envs.sim.bandwidth import get_link

if TYPE_CHECKING:
    from envs.sim.prepared import PreparedTrace
    from envs.trace import Trace

#: The device every suite and tool uses unless told otherwise (its host link is the suites' ``pcie4-x16``).
DEFAULT_ACCELERATOR = "a100-80gb"


@dataclass(frozen=True)
class StepModel:
    """The step-time model's parameters (see the module docstring).

    Attributes:
        accelerator: Accelerator preset (:data:`envs.sim.accelerators.ACCELERATORS`).
        link: Host link preset; None: the accelerator's own.
        compute_efficiency, memory_efficiency, link_efficiency: Fractions of peak reached, in (0, 1].
    """

    accelerator: str = DEFAULT_ACCELERATOR
    link: str | None = None
    compute_efficiency: float = 0.7
    memory_efficiency: float = 0.8
    link_efficiency: float = 0.8

    def __post_init__(self) -> None:
        get_accelerator(self.accelerator)
        if self.link is not None:
            get_link(self.link)
        for name in ("compute_efficiency", "memory_efficiency", "link_efficiency"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and 0 < v <= 1):
                raise ValueError(f"{name} must be in (0, 1], got {v!r}")

    @property
    def link_name(self) -> str:
        return self.link or get_accelerator(self.accelerator).link

    @property
    def link_bytes_per_s(self) -> float:
        """Achieved bytes per second in each direction of the host link."""
        return get_link(self.link_name).gb_per_s * 1e9 * self.link_efficiency

    @property
    def name(self) -> str:
        """A short label: ``a100-80gb/pcie4-x16``."""
        return f"{self.accelerator}/{self.link_name}"

    def op_seconds(self, trace: Trace) -> np.ndarray:
        """Roofline compute time of every op of ``trace`` (it must carry op costs)."""
        if not trace.has_costs:
            raise ValueError("the trace has no op costs (FLOPs and bytes per op): step time is unknown")
        acc = get_accelerator(self.accelerator)
        flops_s = acc.peak_flops(trace_dtype(trace)) * self.compute_efficiency
        bytes_s = acc.memory_bytes_per_s * self.memory_efficiency
        return np.maximum(trace.op_flops / flops_s, trace.op_bytes / bytes_s)


@dataclass(frozen=True)
class StepTime:
    """Seconds per steady-state step of one run.

    Attributes:
        step_s: Compute plus stalls, per step.
        compute_s: Roofline compute per step (the same for every policy: the floor no eviction policy can beat).
        stall_s: Waiting on the host link per step.
        steps: Steady-state iterations averaged over.
    """

    step_s: float
    compute_s: float
    stall_s: float
    steps: int

    def to_dict(self) -> dict[str, float | int]:
        return {"step_s": self.step_s, "compute_s": self.compute_s, "stall_s": self.stall_s, "steps": self.steps}


def trace_dtype(trace: Trace) -> str | None:
    """The dtype a trace's model computes in (its metadata's ``dtype``, or its config's), or None."""
    meta = trace.meta
    dtype = meta.get("dtype")
    config = meta.get("config")
    if dtype is None and isinstance(config, dict):
        dtype = config.get("dtype") or config.get("torch_dtype")
    return dtype.removeprefix("torch.") if isinstance(dtype, str) else None


def unknown_reason(prepared: PreparedTrace) -> str | None:
    """Why step time is unknown for runs over ``prepared`` (None: it is known)."""
    if prepared.classic:
        return "classic mode has no ops to time"
    if not prepared.trace.has_costs:
        return "the trace records no FLOPs or bytes per op (captured before step time existed, or not a model trace)"
    return None


def steady_compute_seconds(prepared: PreparedTrace, model: StepModel) -> float:
    """Roofline compute of the steady-state ops of ``prepared`` (computed once per trace and model)."""
    cache = prepared.step_cache
    if model not in cache:
        trace = prepared.trace
        first_op = int(trace.op_index[prepared.steady_from]) if len(trace) else 0
        cache[model] = float(model.op_seconds(trace)[first_op:].sum())
    return cache[model]


def step_time(prepared: PreparedTrace, stall_bytes: int, model: StepModel | None = None) -> StepTime | None:
    """Step time of a run over ``prepared`` whose ``stall_bytes`` (:class:`envs.sim.simulator.SimResult`) are
    given; None where it is unknown (:func:`unknown_reason`)."""
    if unknown_reason(prepared) is not None:
        return None
    model = model or StepModel()
    steps = prepared.steady_steps
    compute = steady_compute_seconds(prepared, model) / steps
    stall = float(stall_bytes) / model.link_bytes_per_s / steps
    return StepTime(compute + stall, compute, stall, steps)


def compute_floor(prepared: PreparedTrace, model: StepModel | None = None) -> StepTime | None:
    """The step time no eviction policy can beat: compute alone, no stall."""
    return step_time(prepared, 0, model)
