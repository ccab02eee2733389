"""Python front of the engine: preparing a trace, whole-trace runs, and step-by-step sessions."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from functools import cached_property

import numpy as np

from envs.sim import classic_fast
from envs.sim import engine as E
from envs.sim.bandwidth import LINKS, get_link
from envs.sim.capacity import SimError, check_feasible, parse_capacity
from envs.trace import Op, Trace

POLICY_CODES = {
    "lru": E.LRU,
    "fifo": E.FIFO,
    "mru": E.MRU,
    "lfu": E.LFU,
    "belady": E.BELADY,
    "next-use": E.NEXT_USE,
    "random": E.RANDOM,
    "sieve": E.SIEVE,
}
#: Policies with only a whole-trace classic-mode kernel (:mod:`envs.sim.classic_fast`): S3-FIFO refuses objects
#: of at least 10% of the cache, which tensor mode (every operand must be resident) cannot express.
CLASSIC_ONLY_POLICIES = ("s3fifo",)
#: Every policy name :func:`simulate` accepts.
SIM_POLICIES = (*POLICY_CODES, *CLASSIC_ONLY_POLICIES)
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
    from envs.sim.scan_kernels import next_use_scan

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
        op_index = trace.op_index
        # distinct non-FREE operand bytes per op
        req = opc != Op.FREE
        pairs = np.unique(np.stack([op_index[req], tid[req]]), axis=1)
        per_op = np.bincount(pairs[0], weights=sizes[pairs[1]].astype(np.float64))
        op_arg = int(np.argmax(per_op)) if per_op.size else 0
        op_max = int(per_op[op_arg]) if per_op.size else 0
    frees = bool((opc == Op.FREE).any())
    peak = int(sizes.sum()) if not frees else trace.peak_live_bytes()  # nothing freed: every tensor stays live
    next_use = _next_use(tid, opc, classic)
    return PreparedTrace(trace, classic, next_use, sizes, op_max, op_arg, peak)


@dataclass(frozen=True)
class SimResult:
    """Counters of one run (bytes are exact integers)."""

    policy: str
    mode: str
    capacity_bytes: int
    n_req: int
    n_hit: int
    n_miss: int
    n_req_bytes: int
    n_hit_bytes: int
    n_miss_bytes: int
    bytes_in: int
    bytes_out: int
    n_evictions: int
    peak_resident_bytes: int
    trace_hash: str

    @property
    def hit_ratio(self) -> float:
        return self.n_hit / self.n_req if self.n_req else 0.0

    @property
    def byte_hit_ratio(self) -> float:
        return self.n_hit_bytes / self.n_req_bytes if self.n_req_bytes else 0.0

    @property
    def bytes_moved(self) -> int:
        return self.bytes_in + self.bytes_out

    def transfer_seconds(self, link: str = "pcie4-x16") -> float:
        """Transfer time of all bytes moved over a link preset (see :mod:`envs.sim.bandwidth`)."""
        return get_link(link).seconds(self.bytes_moved)

    def to_dict(self) -> dict:
        d = asdict(self)
        d.update(hit_ratio=self.hit_ratio, byte_hit_ratio=self.byte_hit_ratio, bytes_moved=self.bytes_moved)
        d.update({f"transfer_s_{name}": self.transfer_seconds(name) for name in LINKS})
        return d


#: How eviction candidates are chosen when there are more evictable tensors than K:
#: ``lru`` = the K least recently used; ``mixed`` = half with the farthest predicted next use (last access plus
#: previous reuse interval, from the past only), the rest least recently used.
CANDIDATE_RULES = ("lru", "mixed")


class Simulation:
    """One run of the engine over a prepared trace, advanced to the end or decision by decision.

    Args:
        prepared: Output of :func:`prepare`.
        capacity: Cache capacity in bytes (> 0).
        policy: A name in :data:`POLICY_CODES` (the built-in choice; with ``pause`` it is what
            :meth:`builtin_victim` proposes and what invalid external choices fall back to).
        seed: Seed of the random policy.
        pause: Stop at every eviction so the caller supplies the victim (:meth:`evict`).

    Raises:
        SimError: On a bad capacity or policy, or (tensor mode) an op whose operands cannot fit.
    """

    def __init__(self, prepared: PreparedTrace, capacity: int, policy: str = "lru", seed: int = 0, pause: bool = False) -> None:
        capacity = parse_capacity(capacity)
        if policy not in POLICY_CODES:
            raise SimError(f"unknown policy {policy!r}; valid: {', '.join(POLICY_CODES)}")
        check_feasible(prepared, capacity)
        self.prepared = prepared
        self.policy = policy
        self.T, self.S, self.H = E.new_state(prepared.sizes, capacity, POLICY_CODES[policy], prepared.classic, seed, pause)
        self.dense = np.zeros(max(prepared.sizes.shape[0], 1), dtype=np.int64)
        self.done = False
        self.pending = False

    def advance(self, until: int | None = None) -> bool:
        """Runs until the next decision (external policy), access ``until`` (not processed), or the end; returns
        True when the trace is done. :attr:`pending` tells whether it stopped at a decision."""
        p = self.prepared
        stop = p.tid.shape[0] if until is None else max(int(until), int(self.S[E.S_POS]))
        status = E.run(self.T, self.S, self.H, self.dense, p.tid, p.opc, p.op_index, p.op_end, p.next_use, stop)
        self.done = status == E.DONE
        self.pending = status == E.NEED_DECISION
        return self.done

    def evict(self, victim: int) -> None:
        """Supplies the victim of the pending decision (a resident, unpinned tensor id)."""
        self.S[E.S_VICTIM] = victim

    def builtin_victim(self) -> int:
        """The victim the built-in policy would choose now (updates that policy's state, e.g. SIEVE's hand)."""
        v = E.choose_victim(self.T, self.S, self.H, self.dense)
        return int(v)

    def is_evictable(self, t: int) -> bool:
        """Whether tensor t may be evicted now (resident and not an operand of the running op)."""
        T, S = self.T, self.S
        if not 0 <= t < T.shape[0] or T[t, E.F_RES] != 1:
            return False
        return bool(S[E.S_CLASSIC] == 1 or T[t, E.F_PIN] != S[E.S_CUROP])

    def candidates(self, k: int, rule: str = "lru") -> np.ndarray:
        """Up to k evictable resident tensors chosen by ``rule`` (see :data:`CANDIDATE_RULES`)."""
        out = np.empty(k, dtype=np.int64)
        if rule == "lru":
            c = E.lru_candidates(self.T, self.S, k, out)
        elif rule == "mixed":
            c = E.mixed_candidates(self.T, self.S, self.dense, k, out)
        else:
            raise SimError(f"unknown candidate rule {rule!r}; valid: {', '.join(CANDIDATE_RULES)}")
        return out[:c]

    @property
    def now(self) -> int:
        return int(self.S[E.S_POS])

    @property
    def incoming(self) -> int:
        return int(self.S[E.S_INCOMING])

    def result(self) -> SimResult:
        S = self.S
        n_req, hits = int(S[E.S_NREQ]), int(S[E.S_HITS])
        return SimResult(
            policy=self.policy,
            mode=self.prepared.mode,
            capacity_bytes=int(S[E.S_CAP]),
            n_req=n_req,
            n_hit=hits,
            n_miss=n_req - hits,
            n_req_bytes=int(S[E.S_REQB]),
            n_hit_bytes=int(S[E.S_HITB]),
            n_miss_bytes=int(S[E.S_REQB] - S[E.S_HITB]),
            bytes_in=int(S[E.S_BIN]),
            bytes_out=int(S[E.S_BOUT]),
            n_evictions=int(S[E.S_NEVICT]),
            peak_resident_bytes=int(S[E.S_PEAK]),
            trace_hash=self.prepared.trace.content_hash,
        )


def simulate(trace: Trace | PreparedTrace, policy: str, capacity: int | str, mode: str = "tensor", seed: int = 0) -> SimResult:
    """Runs one built-in policy over the whole trace (the compiled fast path; classic-mode LRU, FIFO and Belady
    use the specialised kernels of :mod:`envs.sim.classic_fast`, which give the engine's exact numbers)."""
    prepared = trace if isinstance(trace, PreparedTrace) else prepare(trace, mode)
    cap = parse_capacity(capacity)
    if policy in CLASSIC_ONLY_POLICIES and not prepared.classic:
        raise SimError(f"{policy} runs in classic mode only (it refuses objects of >= 10% of the cache)")
    if prepared.classic and policy in classic_fast.KERNELS:
        tid = np.ascontiguousarray(prepared.trace.tensor_id)  # held narrow (int32) by the readers: not widened
        c = classic_fast.run_classic(policy, tid, prepared.opc, prepared.sizes, prepared.next_use, cap)
        n_req, n_hit, req_b, hit_b, b_in, n_ev, peak = (int(x) for x in c)
        return SimResult(
            policy=policy,
            mode="classic",
            capacity_bytes=cap,
            n_req=n_req,
            n_hit=n_hit,
            n_miss=n_req - n_hit,
            n_req_bytes=req_b,
            n_hit_bytes=hit_b,
            n_miss_bytes=req_b - hit_b,
            bytes_in=b_in,
            bytes_out=0,
            n_evictions=n_ev,
            peak_resident_bytes=peak,
            trace_hash=prepared.trace.content_hash,
        )
    sim = Simulation(prepared, cap, policy, seed)
    sim.advance()
    return sim.result()
