"""A small builder for analytic traces: allocate tensors, emit ops, free tensors; then export columns."""

from __future__ import annotations

import numpy as np

from envs.capture.recorder import check_access_limit
from envs.trace import Kind, Op, Phase

_READ, _WRITE, _FREE = int(Op.READ), int(Op.WRITE), int(Op.FREE)


class OpLog:
    """Accumulates accesses op by op (tensor ids are allocated here, numbered by creation).

    Each access is one tuple ``(tensor, op, op_index, layer, phase, iteration)``; sizes and kinds are looked up
    per tensor when the columns are built, which keeps the per-access cost to one list append.
    """

    def __init__(self) -> None:
        self._rows: list[tuple[int, int, int, int, int, int]] = []
        self._size: list[int] = []
        self._kind: list[int] = []
        self.n_ops = 0
        self._op_flops: list[int] = []
        self._op_bytes: list[int] = []
        self.phase = Phase.FORWARD
        self.layer = 0
        self.iteration = 0

    def new(self, size: int, kind: Kind) -> int:
        """Declares a tensor (no access yet) and returns its id."""
        self._size.append(int(size))
        self._kind.append(int(kind))
        return len(self._size) - 1

    def op(self, reads: tuple[int, ...] = (), writes: tuple[int, ...] = (), frees: tuple[int, ...] = (), flops: int = 0) -> None:
        """One op: READ each of ``reads``, WRITE each of ``writes``, then FREE ``frees``; it does ``flops``
        floating-point operations and touches the bytes of the distinct tensors it reads and writes."""
        k = self.n_ops
        self.n_ops += 1
        if not k & 255:  # every 256 ops (and once more at the end): a bounded request stops early
            check_access_limit(len(self._rows))
        self._op_flops.append(int(flops))
        size = self._size
        self._op_bytes.append(sum(size[t] for t in set(reads)) + sum(size[t] for t in set(writes)))
        lay, ph, it = self.layer, int(self.phase), self.iteration
        rows = self._rows
        for t in reads:
            rows.append((t, _READ, k, lay, ph, it))
        for t in writes:
            rows.append((t, _WRITE, k, lay, ph, it))
        for t in frees:
            rows.append((t, _FREE, k, lay, ph, it))

    def out(
        self, reads: tuple[int, ...], size: int, kind: Kind = Kind.TEMPORARY, frees: tuple[int, ...] = (), flops: int = 0
    ) -> int:
        """An op that reads ``reads`` and writes one fresh tensor of ``size`` bytes; returns its id."""
        t = self.new(size, kind)
        self.op(reads, (t,), frees, flops)
        return t

    def free(self, *tids: int) -> None:
        """FREE records attached to the last op."""
        k = max(self.n_ops - 1, 0)
        lay, ph, it = self.layer, int(self.phase), self.iteration
        self._rows.extend((t, _FREE, k, lay, ph, it) for t in tids)

    def arrays(self) -> dict[str, np.ndarray]:
        """Columns for :meth:`envs.trace.Trace.from_arrays` (ids renumbered by first access), with the op costs."""
        from envs.trace import renumber

        check_access_limit(len(self._rows))
        a = np.array(self._rows, dtype=np.int64).reshape(-1, 6)
        tid = a[:, 0]
        cols = {
            "tensor_id": renumber(tid),
            "size": np.asarray(self._size, dtype=np.int64)[tid],
            "op": a[:, 1],
            "kind": np.asarray(self._kind, dtype=np.int64)[tid],
            "layer": a[:, 3],
            "phase": a[:, 4],
            "op_index": a[:, 2],
            "iteration": a[:, 5],
        }
        n_ops = int(a[-1, 2]) + 1 if a.shape[0] else 0
        cols["op_flops"] = np.asarray(self._op_flops[:n_ops], dtype=np.int64)
        cols["op_bytes"] = np.asarray(self._op_bytes[:n_ops], dtype=np.int64)
        return cols
