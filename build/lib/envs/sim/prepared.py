"""A trace prepared for the engine: next-use indices, per-tensor sizes, the largest op and the peak live bytes,
computed once per trace and mode and shared by every run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from envs.sim import engine as E
from envs.sim.errors import SimError
from envs.trace import Op, Trace

MODES = ("tensor", "classic")


@dataclass(frozen=True)
class PreparedTrace:
    """Arrays the engine needs for one trace in one mode (computed once, reused by every run).

    The per-access arrays of the step-by-step engine (:attr:`tid`, :attr:`opc`, :attr:`op_index`, :attr:`op_end`:
    contiguous, in the engine's dtypes) are built on first use, so a whole-trace classic run of a kernel in
    :mod:`envs.sim.classic_fast`, which reads the trace's own columns, never pays for them.
    """

    trace: Trace
    classic: bool
    next_use: np.ndarray
    sizes: np.ndarray
    op_bytes_max: int
    op_bytes_argmax: int
    peak_live_bytes: int

    @property
    def mode(self) -> str:
        return "classic" if self.classic else "tensor"

    def with_arrays(
        self, tid: np.ndarray, opc: np.ndarray, op_index: np.ndarray, op_end: np.ndarray, next_use: np.ndarray
    ) -> PreparedTrace:
        """A copy whose per-access arrays are the given ones (same values, held elsewhere: rows of one block)."""
        copy = replace(self, next_use=next_use)
        copy.__dict__.update(tid=tid, opc=opc, op_index=op_index, op_end=op_end)  # where cached_property keeps them
        return copy

    @cached_property
    def steady_from(self) -> int:
        """First access of the steady state: the second iteration (the first one fetches the weights cold, and in
        serving it is the prefill), or 0 when the trace has one iteration or runs in classic mode. The step-time
        model (:mod:`envs.sim.step_time`) counts from here."""
        it = self.trace.iteration
        if self.classic or len(it) == 0:
            return 0
        later = np.flatnonzero(it != it[0])
        return int(later[0]) if later.size else 0

    @cached_property
    def steady_steps(self) -> int:
        """Iterations in the steady state (at least 1)."""
        it = self.trace.iteration[self.steady_from :]
        return max(int(np.unique(it).shape[0]), 1)

    @cached_property
    def step_cache(self) -> dict:
        """Per-device compute seconds of the steady state, filled by :mod:`envs.sim.step_time` (computed once per
        trace and device, shared by every run)."""
        return {}

    @cached_property
    def tid(self) -> np.ndarray:
        """Tensor id of every access (int64)."""
        return np.ascontiguousarray(self.trace.tensor_id, dtype=np.int64)

    @cached_property
    def opc(self) -> np.ndarray:
        """:class:`~envs.trace.Op` code of every access (uint8)."""
        return np.ascontiguousarray(self.trace.op, dtype=np.uint8)

    @cached_property
    def op_index(self) -> np.ndarray:
        """The op every access belongs to (int64; in classic mode every request is its own op)."""
        if self.classic:
            return np.arange(len(self.trace), dtype=np.int64)
        return np.ascontiguousarray(self.trace.op_index, dtype=np.int64)

    @cached_property
    def op_end(self) -> np.ndarray:
        """For every access, the index one past the last access of its op (int64)."""
        n = len(self.trace)
        if self.classic:
            return np.arange(1, n + 1, dtype=np.int64)
        bounds = np.flatnonzero(np.diff(self.op_index)) + 1
        ends = np.append(bounds, n)
        starts = np.insert(bounds, 0, 0)
        return np.repeat(ends, ends - starts).astype(np.int64)


def _next_use(tid: np.ndarray, opc: np.ndarray, classic: bool) -> np.ndarray:
    """Index of the next READ/WRITE of the same tensor (NEVER if none, or if a FREE comes first); one O(n) scan."""
    from envs.trace.scan_kernels import next_use_scan

    return next_use_scan(tid, opc, classic, int(Op.FREE), int(E.NEVER))


def prepare(trace: Trace, mode: str = "tensor") -> PreparedTrace:
    """Precomputes next-use indices, per-tensor sizes, the largest op's bytes and the peak live bytes of ``trace``
    in ``mode`` (the engine's per-access arrays follow on first use, see :class:`PreparedTrace`)."""
    if mode not in MODES:
        raise SimError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
    if len(trace) == 0:
        raise SimError("the trace is empty: nothing to simulate")
    classic = mode == "classic"
    sizes = trace.tensor_sizes()
    opc = np.ascontiguousarray(trace.op, dtype=np.uint8)
    if classic:  # every request is its own op; ids stay in the integer type the trace holds them in
        op_max, op_arg = int(sizes.max()), int(np.argmax(trace.size))
        tid = np.ascontiguousarray(trace.tensor_id)
    else:
        tid = np.ascontiguousarray(trace.tensor_id, dtype=np.int64)  # no copy when held in int64; reused as .tid
        from envs.trace.scan_kernels import largest_op

        op_index = np.ascontiguousarray(trace.op_index, dtype=np.int64)
        op_arg, op_max = largest_op(tid, opc, op_index, np.ascontiguousarray(sizes, dtype=np.int64), int(Op.FREE))
    frees = bool((opc == Op.FREE).any())
    peak = int(sizes.sum()) if not frees else trace.peak_live_bytes()  # nothing freed: every tensor stays live
    next_use = _next_use(tid, opc, classic)
    return PreparedTrace(trace, classic, next_use, sizes, op_max, op_arg, peak)
