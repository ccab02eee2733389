"""Python front of the engine: whole-trace runs (:func:`simulate`) and step-by-step sessions (:class:`Simulation`),
whose state Python reads through the accessors here (the slot layout belongs to :mod:`envs.sim.engine`); preparing a
trace lives in :mod:`envs.sim.prepared`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from envs.sim import classic_fast
from envs.sim import engine as E
from envs.sim.bandwidth import LINKS, get_link
from envs.sim.capacity import check_feasible, parse_capacity
from envs.sim.errors import SimError
from envs.sim.policies import CLASSIC_ONLY, ENGINE_CODES
from envs.sim.prepared import PreparedTrace, prepare
from envs.trace import Trace

#: Built-in engine policies by name, from the catalogue (:mod:`envs.sim.policies`).
POLICY_CODES = ENGINE_CODES
#: Policies with only a whole-trace classic-mode kernel (:mod:`envs.sim.classic_fast`): S3-FIFO refuses objects
#: of at least 10% of the cache, which tensor mode (every operand must be resident) cannot express.
CLASSIC_ONLY_POLICIES = CLASSIC_ONLY
#: Every policy name :func:`simulate` accepts.
SIM_POLICIES = (*POLICY_CODES, *CLASSIC_ONLY_POLICIES)


@dataclass(frozen=True)
class SimResult:
    """Counters of one run (bytes are exact integers).

    ``stall_bytes`` sums, over the ops of the steady state (see :attr:`PreparedTrace.steady_from`), the larger of
    the bytes each op fetched and the bytes its evictions wrote back: what the step-time model
    (:mod:`envs.sim.step_time`) charges to the link. In classic mode it equals ``bytes_in``."""

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
    stall_bytes: int
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


@dataclass(frozen=True)
class TensorState:
    """The engine's per-tensor state of some tensors (arrays in the order asked; see :meth:`Simulation.tensor_state`).

    Attributes:
        size: Bytes.
        resident: 1 when resident.
        dirty: 1 when evicting it writes it back.
        last_access: Access index of its last access (-1: never accessed).
        insert_time: Access index of its admission.
        frequency: Accesses since admission.
        reuse_interval: Its previous reuse interval in accesses (0: none seen yet).
    """

    size: np.ndarray
    resident: np.ndarray
    dirty: np.ndarray
    last_access: np.ndarray
    insert_time: np.ndarray
    frequency: np.ndarray
    reuse_interval: np.ndarray


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
        self.T, self.S, self.H = E.new_state(
            prepared.sizes, capacity, POLICY_CODES[policy], prepared.classic, seed, pause, prepared.steady_from
        )
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

    def candidates(self, k: int | None = None, rule: str = "lru") -> np.ndarray:
        """Up to k evictable resident tensors chosen by ``rule`` (see :data:`CANDIDATE_RULES`); every one of them
        when ``k`` is None."""
        if k is None:
            k = max(int(self.prepared.sizes.shape[0]), 1)
        out = np.empty(k, dtype=np.int64)
        if rule == "lru":
            c = E.lru_candidates(self.T, self.S, k, out)
        elif rule == "mixed":
            c = E.mixed_candidates(self.T, self.S, self.dense, k, out)
        else:
            raise SimError(f"unknown candidate rule {rule!r}; valid: {', '.join(CANDIDATE_RULES)}")
        return out[:c]

    def set_status(self, pending: bool) -> None:
        """Records where a compiled call that ran this simulation's state (the env's fused step) stopped: at a
        decision (``pending``) or at the end of the trace."""
        self.pending = pending
        self.done = not pending

    # -- state, read through here (the slot layout belongs to envs.sim.engine) ----------------------------------
    def tensor_state(self, tensor_ids: np.ndarray | None = None) -> TensorState:
        """Per-tensor state of ``tensor_ids`` (one gather), or of every tensor (views, no copy) when None."""
        rows = self.T.T if tensor_ids is None else self.T[tensor_ids].T
        return TensorState(
            size=rows[E.F_SIZE],
            resident=rows[E.F_RES],
            dirty=rows[E.F_DIRTY],
            last_access=rows[E.F_LAST],
            insert_time=rows[E.F_INSERT],
            frequency=rows[E.F_FREQ],
            reuse_interval=rows[E.F_INTERVAL],
        )

    @property
    def now(self) -> int:
        """Index of the current access."""
        return self.S.item(E.S_POS)

    @property
    def incoming(self) -> int:
        """Tensor id that needs room at the pending decision (-1: none)."""
        return self.S.item(E.S_INCOMING)

    @property
    def capacity(self) -> int:
        return self.S.item(E.S_CAP)

    def tensor_size(self, t: int) -> int:
        """Bytes of tensor ``t``."""
        return self.T.item(t, E.F_SIZE)

    @property
    def used_bytes(self) -> int:
        """Bytes resident now."""
        return self.S.item(E.S_USED)

    @property
    def hits(self) -> int:
        """Requests that hit so far."""
        return self.S.item(E.S_HITS)

    @property
    def n_requests(self) -> int:
        return self.S.item(E.S_NREQ)

    @property
    def bytes_in(self) -> int:
        return self.S.item(E.S_BIN)

    @property
    def bytes_out(self) -> int:
        """Dirty bytes written back so far."""
        return self.S.item(E.S_BOUT)

    @property
    def stall_bytes(self) -> int:
        """Link bytes on the step's critical path so far (see :class:`SimResult`)."""
        return int(E.stall_bytes(self.S))

    @property
    def bytes_moved(self) -> int:
        """Bytes transferred in plus dirty bytes written back so far."""
        S = self.S
        return S.item(E.S_BIN) + S.item(E.S_BOUT)

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
            stall_bytes=self.stall_bytes,
            n_evictions=int(S[E.S_NEVICT]),
            peak_resident_bytes=int(S[E.S_PEAK]),
            trace_hash=self.prepared.trace.content_hash,
        )


def simulate(trace: Trace | PreparedTrace, policy: str, capacity: int | str, mode: str = "tensor", seed: int = 0) -> SimResult:
    """Runs one built-in policy over the whole trace (the compiled fast path; in classic mode the policies with a
    specialised kernel in :mod:`envs.sim.classic_fast` — LRU, FIFO, Belady, SIEVE, S3-FIFO — run there, with the
    engine's exact numbers)."""
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
            stall_bytes=b_in,
            n_evictions=n_ev,
            peak_resident_bytes=peak,
            trace_hash=prepared.trace.content_hash,
        )
    sim = Simulation(prepared, cap, policy, seed)
    sim.advance()
    return sim.result()
