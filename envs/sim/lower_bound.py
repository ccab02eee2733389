"""A certified lower bound on the bytes any policy moves in tensor mode, as a linear program over reuse intervals.

**The model.** Tensor mode (see :mod:`envs.sim`): a READ miss transfers the tensor in, a WRITE miss allocates it
dirty at no cost, evicting a dirty tensor writes it back, FREE drops at no cost, and all operands of the running
op are resident together. A tensor's life splits into *intervals* between consecutive accesses (and a *tail* from
its last access to its FREE or the end of the trace). Let ``x_I`` = 1 when the tensor stays resident through
interval ``I``. Then, for any schedule:

- *compulsory*: the first READ of a tensor (of its life since a FREE) transfers its bytes in;
- *reads*: an interval ending in a READ that is not kept costs the tensor's bytes (it is read back in);
- *write-backs*: from a WRITE until the tensor's next WRITE (or its FREE / the end of the trace) it is dirty
  until its first eviction, so this *chain* of intervals costs the bytes once if any of its intervals is not
  kept: ``y_chain >= 1 - x_I`` for every ``I`` in the chain;
- *capacity*: right after every admission point (a non-FREE access at position ``i`` of op ``k``), the tensors
  pinned at ``i`` (operands of ``k`` accessed at or before ``i`` and not freed since) plus every kept interval
  covering ``i`` (from an access before op ``k`` to an access or FREE after ``i``) fit in the capacity. Within a
  run of accesses of one op with no FREE between them, the last position's row implies the others, so only those
  rows are built.

- *fixing*: an interval whose tensor is larger than the room left beside the operands pinned at some row it
  covers (capacity minus pinned bytes) cannot be kept in any schedule: ``x_I = 0``. The relaxation alone would
  keep the fraction of it that fits;
- *pairs*: at a capacity row, two kept intervals each larger than half the room left there cannot both be kept,
  so those intervals' ``x`` sum to at most 1 (one row per distinct set). Fixing and pairs are version 2 of the
  bound; version 1 had neither.

Every feasible schedule gives a 0/1 point of these constraints whose objective is at most its bytes moved, so the
LP minimum (``x, y`` relaxed to [0, 1]) is a lower bound on the optimum. **What is relaxed**: fractional residency
(a tensor may be "half kept"), nothing else. A 0/1 solution is achieved by the demand-eviction policy that evicts
only not-kept tensors (the rows guarantee one is resident whenever room is needed), so an integral LP optimum is
the exact optimum; ``tests/test_lower_bound.py`` checks both against exhaustive search.

**Size.** The matrix has one entry per (interval, row it covers). Above ``max_nonzeros`` entries, consecutive
rows are grouped into windows of ``w`` rows and each window's rows are summed
(a nonnegative combination of valid rows is valid): a weaker but still certified bound, reported with its ``w``.

The bound is solved with scipy's HiGHS, in units of the largest power of two below 1/1024 of the largest tensor, so
coefficients stay near 1. Bytes moved are integers and at least the exact LP value, so the reported bound is the
LP value minus a relative 1e-7 (the solver's tolerance), rounded *up* to an integer.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import numpy as np

from envs.sim.engine import OP_FREE, OP_READ, OP_WRITE
from envs.sim.errors import SimError
from envs.sim.prepared import PreparedTrace

#: Bumped whenever a change could alter any bound (recorded in cached bounds).
BOUND_VERSION = 2
DEFAULT_MAX_NONZEROS = 4_000_000
_REL_SLACK = 1e-7


@dataclass(frozen=True)
class LowerBound:
    """A lower bound on bytes moved, and how it was obtained.

    Attributes:
        bytes: The certified lower bound (an integer number of bytes).
        compulsory_bytes: Bytes every policy transfers (first READ of each tensor life); part of ``bytes``.
        window: Admission rows summed into each capacity row (1 = the full LP).
        n_intervals, n_rows, nonzeros: LP size.
        integral: Whether the LP solution is 0/1 (then ``bytes`` is the exact optimum, up to rounding).
        seconds: Time to build and solve.
        capacity: Capacity in bytes.
        trace_hash: Content hash of the trace.
        version: :data:`BOUND_VERSION`.
    """

    bytes: int
    compulsory_bytes: int
    window: int
    n_intervals: int
    n_rows: int
    nonzeros: int
    integral: bool
    seconds: float
    capacity: int
    trace_hash: str
    version: int = BOUND_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Intervals:
    """The reuse intervals of a prepared trace that can cost anything (see the module docstring).

    Attributes:
        tensor: Tensor id of each interval; ``size`` its bytes.
        start: Access index the interval starts at (the tensor's access there); ``end``: the access it ends at
            (its next access or FREE; ``n`` for a tail to the end of the trace).
        read_cost: 1 when the interval ends in a READ.
        chain: Index of the write chain the interval belongs to (-1 = none).
        chain_size: Bytes of each chain's tensor.
        compulsory_bytes: Bytes of first READs.
    """

    tensor: np.ndarray
    size: np.ndarray
    start: np.ndarray
    end: np.ndarray
    read_cost: np.ndarray
    chain: np.ndarray
    chain_size: np.ndarray
    compulsory_bytes: int


def reuse_intervals(prepared: PreparedTrace) -> Intervals:
    """The costly intervals of ``prepared`` (tensor mode)."""
    if prepared.classic:
        raise SimError("the lower bound is defined for tensor mode")
    tid, opc, _op = prepared.tid, prepared.opc.astype(np.int64), prepared.op_index
    n = tid.shape[0]
    order = np.lexsort((np.arange(n), tid))
    t_sorted = tid[order]
    nxt = np.full(n, -1, dtype=np.int64)  # position of the same tensor's next access (FREE included)
    same = t_sorted[1:] == t_sorted[:-1]
    nxt[order[:-1][same]] = order[1:][same]
    prv = np.full(n, -1, dtype=np.int64)
    prv[order[1:][same]] = order[:-1][same]
    sizes = prepared.sizes
    # compulsory: a READ whose previous access (if any) is a FREE
    first_read = (opc == OP_READ) & ((prv < 0) | (opc[np.maximum(prv, 0)] == OP_FREE))
    compulsory = int(sizes[tid[first_read]].sum())
    # intervals start at every non-FREE access
    starts = np.flatnonzero(opc != OP_FREE)
    ends = nxt[starts]
    is_tail_end = ends < 0
    ends = np.where(is_tail_end, n, ends)
    end_code = np.where(is_tail_end, OP_FREE, opc[np.minimum(ends, n - 1)])  # the end of the trace acts as a FREE
    read_cost = (end_code == OP_READ).astype(np.int64)
    # write chains: the latest WRITE at or before each start, within the tensor's current life
    start_code = opc[starts]
    chain_of_start = np.full(starts.shape[0], -1, dtype=np.int64)
    # walk per tensor in access order (vectorised: carry the index of the last WRITE forward within each tensor)
    pos_in_sorted = np.empty(n, dtype=np.int64)
    pos_in_sorted[order] = np.arange(n)
    key = pos_in_sorted[starts]
    srt = np.argsort(key, kind="stable")
    s_t = tid[starts][srt]
    s_code = start_code[srt]
    s_reset = np.ones(srt.shape[0], dtype=bool)  # a new tensor, or a life after a FREE
    s_reset[1:] = (s_t[1:] != s_t[:-1]) | (opc[prv[starts[srt][1:]]] == OP_FREE)
    w_idx = np.where(s_code == OP_WRITE, np.arange(srt.shape[0]), -1)
    # forward-fill the last WRITE index, restarting at every reset
    seg = np.cumsum(s_reset) - 1
    filled = np.maximum.accumulate(np.where(w_idx >= 0, w_idx, -1))
    seg_start = np.flatnonzero(s_reset)
    valid = filled >= seg_start[seg]
    chain_sorted = np.where(valid, filled, -1)
    chain_of_start[srt] = chain_sorted
    # keep intervals that can cost something
    costly = (read_cost > 0) | (chain_of_start >= 0)
    keep = np.flatnonzero(costly)
    chains, chain_idx = np.unique(chain_of_start[keep][chain_of_start[keep] >= 0], return_inverse=True)
    chain = np.full(keep.shape[0], -1, dtype=np.int64)
    chain[chain_of_start[keep] >= 0] = chain_idx
    chain_tensor = tid[starts][srt][chains] if chains.size else np.zeros(0, dtype=np.int64)
    return Intervals(
        tensor=tid[starts][keep],
        size=sizes[tid[starts][keep]],
        start=starts[keep],
        end=ends[keep],
        read_cost=read_cost[keep],
        chain=chain,
        chain_size=sizes[chain_tensor],
        compulsory_bytes=compulsory,
    )


def admission_rows(prepared: PreparedTrace) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the capacity rows and the bytes pinned at each (see the module docstring).

    A row sits at the last non-FREE access of every run of non-FREE accesses within one op.
    """
    tid, opc, op = prepared.tid, prepared.opc, prepared.op_index
    n = tid.shape[0]
    if n == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    is_req = opc != OP_FREE
    pos = np.arange(n)
    # a tensor is pinned from a non-FREE access of op k (the first since the op began or since its FREE in op k)
    # until its next FREE in op k, or the op's end
    key = op * (int(tid.max()) + 1) + tid
    order = np.lexsort((pos, key))
    k_s, is_req_s = key[order], is_req[order]
    new_key = np.ones(n, dtype=bool)
    new_key[1:] = k_s[1:] != k_s[:-1]
    prev_free = np.zeros(n, dtype=bool)
    prev_free[1:] = ~is_req_s[:-1]
    starts_pin = is_req_s & (new_key | prev_free)
    # the next FREE of the same key after each sorted position
    free_rank = np.where(~is_req_s, np.arange(n), n)
    next_free = np.minimum.accumulate(free_rank[::-1])[::-1]  # first FREE at or after each sorted index
    nf = next_free[np.flatnonzero(starts_pin)]
    pin_sorted = np.flatnonzero(starts_pin)
    same = (nf < n) & (k_s[np.minimum(nf, n - 1)] == k_s[pin_sorted])
    pin_at = order[pin_sorted]
    until = np.where(same, order[np.minimum(nf, n - 1)], prepared.op_end[pin_at])
    delta = np.zeros(n + 1)
    np.add.at(delta, pin_at, prepared.sizes[tid[pin_at]].astype(np.float64))
    np.add.at(delta, until, -prepared.sizes[tid[pin_at]].astype(np.float64))
    pinned = np.cumsum(delta)[:n]
    # rows: the last non-FREE access of each run (a run ends where the next access is a FREE or another op)
    nxt_same_run = np.zeros(n, dtype=bool)
    nxt_same_run[:-1] = is_req[1:] & (op[1:] == op[:-1])
    rows = pos[is_req & ~nxt_same_run]
    return rows, pinned[rows]


def _concat_ranges(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(owner, value) for every integer in each [lo, hi] (empty ranges skipped)."""
    length = np.maximum(hi - lo + 1, 0)
    owner = np.repeat(np.arange(lo.shape[0]), length)
    offsets = np.arange(owner.shape[0]) - np.repeat(np.cumsum(length) - length, length)
    return owner, lo[owner] + offsets


def _pair_rows(owner: np.ndarray, row: np.ndarray, size: np.ndarray, slack: np.ndarray, upper: np.ndarray, n_cols: int,
               budget: int):  # fmt: skip
    """The pair inequalities (see the module docstring): at every capacity row, the kept intervals larger than half
    its room sum to at most one; one row per distinct set of two or more such intervals, at most ``budget``
    nonzeros in all (none when they would exceed it: the bound stays valid, only weaker)."""
    from scipy import sparse

    big = (2 * size[owner] > slack[row]) & (upper[owner] > 0)
    o, r = owner[big], row[big]
    if o.size == 0 or o.size > max(budget, 0):
        return sparse.csr_matrix((0, n_cols))
    order = np.lexsort((o, r))
    o, r = o[order], r[order]
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    counts = np.diff(np.r_[starts, o.size])
    # a row's set, by a hash of its members (random 64-bit words summed) and its size; identical sets once
    words = np.random.default_rng(0).integers(0, 2**63, size=n_cols, dtype=np.int64).astype(np.uint64)
    with np.errstate(over="ignore"):
        signature = np.add.reduceat(words[o], starts)
    _, first = np.unique(np.column_stack([signature.astype(np.int64), counts]), axis=0, return_index=True)
    keep = np.sort(first[counts[first] >= 2])
    if keep.size == 0:
        return sparse.csr_matrix((0, n_cols))
    members = np.concatenate([o[starts[k] : starts[k] + counts[k]] for k in keep])
    rows_of = np.repeat(np.arange(keep.size), counts[keep])
    return sparse.csr_matrix((np.ones(members.size), (rows_of, members)), shape=(keep.size, n_cols))


def lower_bound(
    prepared: PreparedTrace, capacity: int, *, max_nonzeros: int = DEFAULT_MAX_NONZEROS
) -> tuple[LowerBound, np.ndarray, Intervals]:
    """The LP lower bound on bytes moved of ``prepared`` at ``capacity`` (tensor mode).

    Returns:
        The bound, the LP's residency value ``x`` of every interval, and the intervals.

    Raises:
        SimError: In classic mode, on an infeasible capacity, or if the solver fails.
    """
    from scipy import sparse
    from scipy.optimize import linprog

    from envs.sim.capacity import check_feasible

    t0 = time.perf_counter()
    check_feasible(prepared, capacity)
    iv = reuse_intervals(prepared)
    n_iv, n_chain = iv.tensor.shape[0], iv.chain_size.shape[0]
    biggest = int(prepared.sizes.max(initial=1))
    unit = float(max(1, 2 ** int(math.log2(max(biggest, 1))) // 1024))
    row_pos, pinned = admission_rows(prepared)
    # an interval covers the rows after its start op (its own op pins it) and before its end access
    first_after = prepared.op_end[iv.start] if iv.start.size else iv.start
    lo = np.searchsorted(row_pos, first_after, side="left")
    hi = np.searchsorted(row_pos, iv.end, side="left") - 1
    length = np.maximum(hi - lo + 1, 0)
    total = int(length.sum())
    window = 1
    while total > max_nonzeros and int((length // window + 2).sum()) > max_nonzeros:
        window *= 2
    owner, row = _concat_ranges(lo, hi)
    slack = capacity - pinned
    # fixing: an interval whose tensor does not fit beside the operands pinned at some row it covers is evicted there
    # in every schedule (x = 0), which the relaxation would otherwise keep in part
    upper = np.ones(iv.tensor.shape[0])
    if owner.size:
        first = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
        tightest = np.minimum.reduceat(slack[row], first)
        upper[owner[first][tightest < iv.size[owner[first]]]] = 0.0
    a_pair = _pair_rows(owner, row, iv.size, slack, upper, n_iv + n_chain, max_nonzeros // 2)
    if window == 1:
        coef = iv.size[owner].astype(np.float64)
        block = row
    else:
        block = row // window
        n_blocks = int(block.max(initial=0)) + 1
        key, counts = np.unique(owner * n_blocks + block, return_counts=True)
        owner, block = key // n_blocks, key % n_blocks
        coef = iv.size[owner].astype(np.float64) * counts
        slack = np.add.reduceat(slack, np.arange(0, slack.shape[0], window)) if slack.size else slack
    used_rows, row_index = np.unique(block, return_inverse=True)
    rhs_cap = slack[used_rows] / unit
    a_cap = sparse.csr_matrix((coef / unit, (row_index, owner)), shape=(used_rows.shape[0], n_iv + n_chain))
    in_chain = np.flatnonzero(iv.chain >= 0)
    m = in_chain.shape[0]
    chain_rows = np.concatenate([np.arange(m), np.arange(m)])
    chain_cols = np.concatenate([in_chain, n_iv + iv.chain[in_chain]])
    a_chain = sparse.csr_matrix((np.full(2 * m, -1.0), (chain_rows, chain_cols)), shape=(m, n_iv + n_chain))
    a_ub = sparse.vstack([a_cap, a_pair, a_chain], format="csr")
    b_ub = np.concatenate([rhs_cap, np.ones(a_pair.shape[0]), -np.ones(m)])
    size_u = iv.size.astype(np.float64) / unit
    c = np.concatenate([-size_u * iv.read_cost, iv.chain_size.astype(np.float64) / unit])
    constant = float((size_u * iv.read_cost).sum())
    if n_iv + n_chain == 0:
        value, x, integral = 0.0, np.zeros(0), True
    else:
        bounds = np.column_stack([np.zeros(n_iv + n_chain), np.concatenate([upper, np.ones(n_chain)])])
        res = linprog(c, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs")
        if res.status != 0:
            raise SimError(f"the lower-bound LP did not solve: {res.message}")
        value = constant + float(res.fun)
        x = res.x[:n_iv]
        integral = bool(np.all(np.minimum(np.abs(res.x), np.abs(1 - res.x)) < 1e-6))
    lp_bytes = max(value, 0.0) * unit
    bound = iv.compulsory_bytes + max(math.ceil(lp_bytes - _REL_SLACK * lp_bytes - 1e-9), 0)
    result = LowerBound(
        bytes=bound,
        compulsory_bytes=iv.compulsory_bytes,
        window=window,
        n_intervals=n_iv,
        n_rows=int(a_ub.shape[0]),
        nonzeros=int(a_ub.nnz),
        integral=integral,
        seconds=time.perf_counter() - t0,
        capacity=int(capacity),
        trace_hash=prepared.trace.content_hash,
    )
    return result, x, iv
