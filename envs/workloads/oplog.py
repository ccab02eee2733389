"""A small builder for analytic traces: allocate tensors, emit ops, free tensors; then export columns."""

from __future__ import annotations

import numpy as np

from envs.trace import Kind, Op, Phase


class OpLog:
    """Accumulates accesses op by op (tensor ids are allocated here, numbered by creation)."""

    def __init__(self) -> None:
        self._cols: dict[str, list[int]] = {
            k: [] for k in ("tensor_id", "size", "op", "kind", "layer", "phase", "op_index", "iteration")
        }
        self._size: list[int] = []
        self._kind: list[int] = []
        self.n_ops = 0
        self.phase = Phase.FORWARD
        self.layer = 0
        self.iteration = 0

    def new(self, size: int, kind: Kind) -> int:
        """Declares a tensor (no access yet) and returns its id."""
        self._size.append(int(size))
        self._kind.append(int(kind))
        return len(self._size) - 1

    def _emit(self, tid: int, op: Op, op_index: int) -> None:
        c = self._cols
        c["tensor_id"].append(tid)
        c["size"].append(self._size[tid])
        c["op"].append(int(op))
        c["kind"].append(self._kind[tid])
        c["layer"].append(self.layer)
        c["phase"].append(int(self.phase))
        c["op_index"].append(op_index)
        c["iteration"].append(self.iteration)

    def op(self, reads: tuple[int, ...] = (), writes: tuple[int, ...] = (), frees: tuple[int, ...] = ()) -> None:
        """One op: READ each of ``reads``, WRITE each of ``writes``, then FREE ``frees``."""
        k = self.n_ops
        self.n_ops += 1
        for t in reads:
            self._emit(t, Op.READ, k)
        for t in writes:
            self._emit(t, Op.WRITE, k)
        for t in frees:
            self._emit(t, Op.FREE, k)

    def out(self, reads: tuple[int, ...], size: int, kind: Kind = Kind.TEMPORARY, frees: tuple[int, ...] = ()) -> int:
        """An op that reads ``reads`` and writes one fresh tensor of ``size`` bytes; returns its id."""
        t = self.new(size, kind)
        self.op(reads, (t,), frees)
        return t

    def free(self, *tids: int) -> None:
        """FREE records attached to the last op."""
        k = max(self.n_ops - 1, 0)
        for t in tids:
            self._emit(t, Op.FREE, k)

    def arrays(self) -> dict[str, np.ndarray]:
        """Columns for :meth:`envs.trace.Trace.from_arrays` (ids renumbered by first access)."""
        from envs.trace import renumber

        cols = {k: np.asarray(v) for k, v in self._cols.items()}
        cols["tensor_id"] = renumber(cols["tensor_id"])
        return cols
