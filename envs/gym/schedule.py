"""Schedule-aware, past-only prediction of when each tensor is used next.

Training steps and decode steps repeat. Once an iteration has finished, it is a map of the next one: the current
op is lined up with the op at the same offset into the same run of the previous iteration, a run being a maximal
stretch of consecutive ops of one (phase, layer), numbered within its iteration (so the optimizer's foreach sweeps,
which visit every layer once per sweep, line up sweep by sweep, and a step whose layers run extra ops still lines up
layer by layer). A tensor's next use is predicted from what happened after the lined-up op:

- a tensor that lived through the previous iteration (weights, gradients, optimizer state, KV blocks): its first
  use after the lined-up op there; dead if it was freed there first (what it holds now is never read again); if
  it was not used again there, its first use of that iteration, one iteration on;
- a tensor born in this iteration (activations, temporaries): the tensor born at the lined-up position of its own
  birth (same op, same rank among that op's new tensors of its kind) stands in for it; if that stand-in was not used again in
  its iteration, the tensor is predicted dead.

Serving (prefill, decode) keeps the next-use rule (last access plus previous reuse interval) for every tensor that
has a reuse interval, which predicts decode steps better than lining up steps whose KV blocks grow; the lined-up
prediction then only tells which fresh tensors are dead. Two serving rules complete it (predictor version 2):

- the layer cycle: a weight or KV block with no reuse interval yet comes back when its layer's turn comes in the
  next step, the length of the last finished step after its last access (in the prefill, before any step has
  finished, the most recent of them goes first, as decoding starts from the first layer);
- routed experts: a weight read fewer times than there are finished decode steps (a mixture-of-experts expert,
  read once by each step that routes a token to it) is expected back at its layer's turn after ``1 / rate - 1``
  more steps, ``rate`` being its reads per finished decode step (add-one-half smoothed), instead of one reuse
  interval after its last use.

Before any iteration has finished, training follows a phase rule: in the forward pass the least recently used tensor
is needed last (backward visits layers last in, first out); in the backward pass a tensor it already touched is
needed only after it (by the optimizer or the next step), so those go first, least recent first; in the optimizer
pass a tensor it already touched is needed again only in a later sweep, so the most recent of those goes first.

Distances are in accesses, with whether the predicted use is a READ (evicting then costs a read-back).
Everything read at a decision lies at or before the current access: the previous iteration (finished), the runs
and births seen so far, the tensor's own past accesses (``tests/test_past_only.py`` checks it by cutting traces).
One implementation serves the built-in heuristic ``schedule`` (:class:`agents.heuristics.ScheduleAware`) and the
views that carry ``schedule_distance`` and ``schedule_next_read``.
"""

from __future__ import annotations

import numba
import numpy as np

from envs.sim import engine as E
from envs.sim.prepared import PreparedTrace
from envs.trace import Kind, Op, Phase

#: Version of the prediction rules (recorded in the ``schedule`` heuristic's config; 2 added the serving rules).
PREDICTOR_VERSION = 2
#: Predicted distance of a tensor that is not used again.
DEAD = float(2**50)
#: Beyond every distance the schedule predicts (the optimizer pass's most recent tensors go there).
_FAR = float(2**40)
_BACKWARD, _OPTIMIZER, _PREFILL, _DECODE = int(Phase.BACKWARD), int(Phase.OPTIMIZER), int(Phase.PREFILL), int(Phase.DECODE)
_WEIGHT, _KV_CACHE = int(Kind.WEIGHT), int(Kind.KV_CACHE)
_N_PHASES = len(Phase)
_N_KINDS = len(Kind)
#: Runs of one (iteration, phase, layer) told apart; later ones line up with the last.
_MAX_RUNS = 16
#: Victims ranked at once by the compiled heuristic (an access that needs more ranks again).
_RANKED = 8


def preference(distance: np.ndarray, next_read: np.ndarray, dirty: np.ndarray, last_access: np.ndarray,
               candidates: np.ndarray) -> np.ndarray:  # fmt: skip
    """Candidate indices, most evictable first, by the predictions: the fewest bytes evicting costs (a write-back
    if dirty, a read-back if the predicted use is a READ) per byte and predicted access of room it frees; ties to the
    farthest predicted use, then the least recently used, then the lowest id. The ``schedule`` heuristic evicts
    the first; the ``schedule`` candidate rule offers the first K."""
    cost = (dirty > 0) + next_read  # per byte
    return np.lexsort((candidates, last_access, -distance, cost / np.maximum(distance, 1.0)))


class SchedulePredictor:
    """Per-trace tables of the schedule-aware predictor (built once per prepared trace).

    Args:
        prepared: Output of :func:`envs.sim.prepare`.
    """

    def __init__(self, prepared: PreparedTrace) -> None:
        trace = prepared.trace
        n = len(trace)
        op = np.ascontiguousarray(trace.op_index, dtype=np.int64) if not prepared.classic else np.arange(n, dtype=np.int64)
        tid = np.ascontiguousarray(trace.tensor_id, dtype=np.int64)
        opc = np.ascontiguousarray(trace.op, dtype=np.int64)
        n_ops = int(op[-1]) + 1
        n_ids = int(prepared.sizes.shape[0])
        op_pos = np.full(n_ops, n, dtype=np.int64)  # first access of every op
        np.minimum.at(op_pos, op, np.arange(n, dtype=np.int64))
        empty = op_pos == n  # op numbers with no access (every storage they touched was dropped)
        first = np.minimum(op_pos, n - 1)
        it_of_op = np.where(empty, -1, trace.iteration[first]).astype(np.int64)
        ph_of_op = np.where(empty, 0, trace.phase[first]).astype(np.int64)
        lay_of_op = np.where(empty, 0, np.maximum(trace.layer[first].astype(np.int64), -1) + 1)
        # an empty op stands at the first access of the next op that has one (earlier than any later op's)
        op_pos = np.minimum.accumulate(op_pos[::-1])[::-1].copy()
        n_its, n_lay = max(int(it_of_op.max()) + 1, 1), int(lay_of_op.max()) + 1
        # runs: maximal stretches of consecutive ops of one (iteration, phase, layer), numbered within it (the
        # optimizer's foreach sweeps visit every layer once per sweep); first and last op of every run and of every
        # iteration, -1 where absent
        run_of_op = np.zeros(n_ops, dtype=np.int64)
        n_runs = _number_runs(it_of_op, ph_of_op, lay_of_op, n_its, n_lay, run_of_op)
        seg_start = np.full((n_its, _N_PHASES, n_lay, n_runs), -1, dtype=np.int64)
        seg_end = np.full((n_its, _N_PHASES, n_lay, n_runs), -1, dtype=np.int64)
        it_start = np.full(n_its, -1, dtype=np.int64)
        it_end = np.full(n_its, -1, dtype=np.int64)
        # ops from there on are not lined up: the iteration numbers decreased there (never in built-in traces)
        aligned_until = _segments(it_of_op, ph_of_op, lay_of_op, run_of_op, seg_start, seg_end, it_start, it_end)
        # per tensor, in order: its READ/WRITE accesses (their ops, positions and whether each is a READ) and the
        # ops of its FREEs
        uses, use_ptr = _by_tensor(tid, np.flatnonzero(opc != int(Op.FREE)), n_ids)
        frees, free_ptr = _by_tensor(tid, np.flatnonzero(opc == int(Op.FREE)), n_ids)
        use_read = (opc[uses] == int(Op.READ)).astype(np.int64)
        # births: the op of each tensor's first access, and its rank among the tensors of its kind (at that access)
        # born in that op; born_ptr is indexed by op * N_KINDS + kind
        first_pos = np.full(n_ids, n, dtype=np.int64)
        np.minimum.at(first_pos, tid, np.arange(n, dtype=np.int64))
        born = np.flatnonzero(first_pos < n)
        birth_op = np.full(n_ids, -1, dtype=np.int64)
        birth_op[born] = op[first_pos[born]]
        birth_key = np.zeros(n_ids, dtype=np.int64)
        birth_key[born] = birth_op[born] * _N_KINDS + trace.kind[first_pos[born]]
        born = born[np.lexsort((first_pos[born], birth_key[born]))]
        born_ptr = np.zeros(n_ops * _N_KINDS + 1, dtype=np.int64)
        np.cumsum(np.bincount(birth_key[born], minlength=n_ops * _N_KINDS), out=born_ptr[1:])
        birth_rank = np.zeros(n_ids, dtype=np.int64)
        birth_rank[born] = np.arange(born.shape[0]) - born_ptr[birth_key[born]]
        kind_of = np.zeros(n_ids, dtype=np.int64)  # each tensor's kind (at its first access)
        seen = first_pos < n
        kind_of[seen] = trace.kind[first_pos[seen]]
        # the compiled query's arguments after the decision's own, in its order
        self._tables = (aligned_until, op, op_pos, it_of_op, ph_of_op, lay_of_op, run_of_op, seg_start, seg_end,
                        it_start, it_end, op[uses], uses, use_read, use_ptr, op[frees], free_ptr, birth_op, birth_key,
                        birth_rank, born_ptr, born, kind_of)  # fmt: skip

    @property
    def tables(self) -> tuple:
        """The compiled query's arguments after the decision's own (for compiled callers of :func:`_distances`)."""
        return self._tables

    def predict(self, now: int, candidates: np.ndarray, last_access: np.ndarray, reuse_interval: np.ndarray) -> np.ndarray:
        """Predictions at the decision of access ``now`` from the candidates' last access positions and previous
        reuse intervals (0: none yet): row 0 the accesses until each candidate's next use (:data:`DEAD` when it is
        predicted never to be used again), row 1 whether that use is predicted to be a READ (1.0; evicting the
        tensor then costs a read-back) or a WRITE (0.0; a dead tensor counts as 0)."""
        out = np.empty((2, candidates.shape[0]), dtype=np.float64)
        _distances(now, candidates, last_access, reuse_interval, *self._tables, out)
        return out


def _by_tensor(tid: np.ndarray, rows: np.ndarray, n_ids: int) -> tuple[np.ndarray, np.ndarray]:
    """``rows`` (access positions, in order) grouped by tensor, each tensor's still in order, and the offsets of
    each tensor's group (CSR: tensor t's are ``[ptr[t], ptr[t + 1])``)."""
    grouped = rows[np.argsort(tid[rows], kind="stable")].astype(np.int64)
    ptr = np.zeros(n_ids + 1, dtype=np.int64)
    np.cumsum(np.bincount(tid[rows], minlength=n_ids), out=ptr[1:])
    return grouped, ptr


@numba.njit(cache=True)
def _number_runs(it_of_op, ph_of_op, lay_of_op, n_its, n_lay, run_of_op):  # pragma: no cover - compiled
    """Numbers each op's run within its (iteration, phase, layer), from the ops before it only (at most
    :data:`_MAX_RUNS`; later runs share the last number); returns the number of run numbers used."""
    count = np.zeros((n_its, _N_PHASES, n_lay), dtype=np.int64)
    prev_key = -1
    used = 1
    for o in range(it_of_op.shape[0]):
        it, ph, lay = it_of_op[o], ph_of_op[o], lay_of_op[o]
        if it < 0:
            continue  # an op with no access belongs to no run
        key = (it * _N_PHASES + ph) * n_lay + lay
        if key != prev_key:
            count[it, ph, lay] += 1
            prev_key = key
        r = min(count[it, ph, lay], _MAX_RUNS) - 1
        run_of_op[o] = r
        used = max(used, r + 1)
    return used


@numba.njit(cache=True)
def _segments(it_of_op, ph_of_op, lay_of_op, run_of_op, seg_start, seg_end, it_start, it_end):  # pragma: no cover - compiled
    """Fills the segment bounds from the ops while iteration numbers do not decrease; returns the first op where
    they do (the number of ops if never), so no bound depends on what comes after it."""
    top = 0
    for o in range(it_of_op.shape[0]):
        it, ph, lay = it_of_op[o], ph_of_op[o], lay_of_op[o]
        if it < 0:
            continue  # an op with no access
        if it < top:
            return o
        top = it
        r = run_of_op[o]
        if seg_start[it, ph, lay, r] < 0:
            seg_start[it, ph, lay, r] = o
        seg_end[it, ph, lay, r] = o
        if it_start[it] < 0:
            it_start[it] = o
        it_end[it] = o
    return it_of_op.shape[0]


@numba.njit(cache=True, inline="always")
def _lined_up(o, it_of_op, ph_of_op, lay_of_op, run_of_op, seg_start, seg_end):  # pragma: no cover - compiled
    """The op of the previous iteration at the same offset into the same (phase, layer) segment as op ``o``
    (-1: none)."""
    it, ph, lay = it_of_op[o], ph_of_op[o], lay_of_op[o]
    r = run_of_op[o]
    if it == 0 or seg_start[it - 1, ph, lay, r] < 0:
        return -1
    p = seg_start[it - 1, ph, lay, r] + (o - seg_start[it, ph, lay, r])
    return min(p, seg_end[it - 1, ph, lay, r])


@numba.njit(cache=True, inline="always")
def _first_use_after(use_op, lo, hi, p):  # pragma: no cover - compiled
    """Index in ``use_op[lo:hi]`` of the first use at an op after ``p`` (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) // 2
        if use_op[mid] <= p:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True)
def _distances(now, cands, last, interval, aligned_until, op, op_pos, it_of_op, ph_of_op, lay_of_op, run_of_op, seg_start,
               seg_end, it_start, it_end, use_op, use_pos, use_read, use_ptr, free_op, free_ptr, birth_op, birth_key, birth_rank,
               born_ptr, born_ids, kind_of, out):  # pragma: no cover - compiled  # fmt: skip
    o = op[now]
    it = it_of_op[o]
    p = _lined_up(o, it_of_op, ph_of_op, lay_of_op, run_of_op, seg_start, seg_end) if o < aligned_until else -1
    prev_end = it_end[it - 1] if it > 0 else -1
    here = op_pos[p] + (now - op_pos[o]) if p >= 0 else 0  # the lined-up access (same offset into its op)
    ph = ph_of_op[o]
    serving = ph in (_PREFILL, _DECODE)
    # accesses of the last finished iteration (a serving step's length); 0 before one has finished
    cycle = op_pos[prev_end + 1] - op_pos[it_start[it - 1]] if it > 0 and prev_end + 1 < op_pos.shape[0] else 0
    for j in range(cands.shape[0]):
        t = cands[j]
        known = interval[j] > 0
        if serving:  # the next-use rule; its next access assumed a READ
            if known:
                out[0, j] = float(last[j] + interval[j] - now)
                out[1, j] = 1.0
                steps = it - 1  # finished decode steps (iteration 0 is the prefill)
                if steps >= 1 and kind_of[t] == _WEIGHT:  # its reads in them
                    lo, hi = use_ptr[t], use_ptr[t + 1]
                    used = _first_use_after(use_op, lo, hi, prev_end) - _first_use_after(use_op, lo, hi, it_end[0])
                    if used < steps:  # not read every step (a routed expert): expected steps until its turn
                        age = now - last[j]
                        rate = (used + 0.5) / (steps + 1.0)
                        out[0, j] = float(cycle - age % cycle) + cycle * (1.0 / rate - 1.0)
            elif kind_of[t] == _WEIGHT or kind_of[t] == _KV_CACHE:  # the layer cycle: its layer's turn next step
                age = now - last[j]
                out[0, j] = float(cycle - age) if 0 < age < cycle else _FAR - age
                out[1, j] = 1.0
            else:
                out[0, j] = DEAD
                out[1, j] = 0.0
        else:  # training: the phase rule (see the module docstring)
            age = float(now - last[j])
            last_ph = ph_of_op[op[last[j]]]
            if ph == _OPTIMIZER and last_ph == _OPTIMIZER:
                out[0, j] = _FAR - age
            elif ph == _BACKWARD and last_ph == _BACKWARD:
                out[0, j] = _FAR + age
            else:
                out[0, j] = age
            out[1, j] = 1.0
        if p < 0 or (serving and known):  # in serving, a reuse interval predicts better than the lined-up step
            continue
        lo, hi = use_ptr[t], use_ptr[t + 1]
        b = birth_op[t]
        if b <= prev_end:  # born before the previous iteration ended: its own schedule there
            k = _first_use_after(use_op, lo, hi, p)
            f = _first_use_after(free_op, free_ptr[t], free_ptr[t + 1], p)
            if f < free_ptr[t + 1] and free_op[f] <= prev_end and (k == hi or use_op[k] > free_op[f]):
                out[0, j] = DEAD  # freed there before any use: what it holds now is not read again
                out[1, j] = 0.0
                continue
            if k < hi and use_op[k] <= prev_end:
                out[0, j] = float(use_pos[k] - here)
                out[1, j] = float(use_read[k])
                continue
            k = _first_use_after(use_op, lo, hi, it_start[it - 1] - 1)
            if k < hi and use_op[k] <= prev_end:  # its first use of the previous iteration, one iteration on
                out[0, j] = float(op_pos[prev_end + 1] - here + use_pos[k] - op_pos[it_start[it - 1]])
                out[1, j] = float(use_read[k])
            continue
        # born in this iteration: the tensor born at the lined-up position of its birth stands in for it
        q = _lined_up(b, it_of_op, ph_of_op, lay_of_op, run_of_op, seg_start, seg_end)
        key = q * _N_KINDS + birth_key[t] % _N_KINDS
        if q < 0 or birth_rank[t] >= born_ptr[key + 1] - born_ptr[key]:
            continue
        u = born_ids[born_ptr[key] + birth_rank[t]]
        ulo, uhi = use_ptr[u], use_ptr[u + 1]
        k = _first_use_after(use_op, ulo, uhi, p)
        if k < uhi and use_op[k] <= prev_end:
            out[0, j] = float(use_pos[k] - here)
            out[1, j] = float(use_read[k])
        else:
            out[0, j] = DEAD
            out[1, j] = 0.0


# ------------------------------------------------------------------------------ the heuristic, compiled whole
@numba.njit(cache=True, inline="always")
def _ahead(ratio_a, dist_a, last_a, t_a, ratio_b, dist_b, last_b, t_b):  # pragma: no cover - compiled
    """Whether candidate a goes before b in :func:`preference`'s order (cost per room, then the farther predicted
    use, then the less recent, then the lower id)."""
    if ratio_a != ratio_b:
        return ratio_a < ratio_b
    if dist_a != dist_b:
        return dist_a > dist_b
    if last_a != last_b:
        return last_a < last_b
    return t_a < t_b


@numba.njit(cache=True)
def schedule_first_k(T, S, dense, k, cands, tables, everyone, last, interval, dist, pred):  # pragma: no cover - compiled
    """The first ``k`` of every evictable tensor in :func:`preference`'s order into ``cands`` and their
    predictions into ``pred``; returns how many. The ``schedule`` heuristic evicts the first (``k`` = 1), the
    ``schedule`` candidate rule offers them all. The order is total (ties go to the lower id), so the scan order of
    the tensors does not matter."""
    m = E.evictable(T, S, dense, everyone)
    for j in range(m):
        t = everyone[j]
        last[j] = E.tensor_last_access(T, t)
        interval[j] = E.tensor_reuse_interval(T, t)
    _distances(E.now(S), everyone[:m], last[:m], interval[:m], *tables, dist[:, :m])
    order = np.empty(k, dtype=np.int64)  # indices into everyone, kept sorted by preference (insertion)
    ratio = np.empty(k)
    n = 0
    for j in range(m):
        t = everyone[j]
        r = ((1.0 if E.tensor_dirty(T, t) > 0 else 0.0) + dist[1, j]) / max(dist[0, j], 1.0)
        if n == k:
            b = order[k - 1]
            if not _ahead(r, dist[0, j], last[j], t, ratio[k - 1], dist[0, b], last[b], everyone[b]):
                continue
        i = n if n < k else k - 1
        while i > 0:
            b = order[i - 1]
            if not _ahead(r, dist[0, j], last[j], t, ratio[i - 1], dist[0, b], last[b], everyone[b]):
                break
            order[i] = order[i - 1]
            ratio[i] = ratio[i - 1]
            i -= 1
        order[i] = j
        ratio[i] = r
        if n < k:
            n += 1
    for i in range(n):
        cands[i] = everyone[order[i]]
        pred[0, i] = dist[0, order[i]]
        pred[1, i] = dist[1, order[i]]
    return n


@numba.njit(cache=True, nogil=True)
def play_schedule(T, S, H, dense, tid, opc, op_index, op_end, next_use, stop, tables, everyone, last, interval,
                  dist):  # fmt: skip  # pragma: no cover - compiled
    """Runs a paused simulation up to access ``stop`` (or its end), the ``schedule`` heuristic answering every
    decision in compiled code; returns the decisions it answered."""
    decisions = 0
    ranked = np.empty(_RANKED, dtype=np.int64)
    pred = np.empty((2, _RANKED))
    n = taken = 0
    at = -1
    while E.run(T, S, H, dense, tid, opc, op_index, op_end, next_use, stop) == E.NEED_DECISION:
        # several evictions for one access see the same predictions and the same tensors less the ones evicted,
        # so they take the next of one ranking (the same choices as ranking again each time)
        if E.now(S) != at or taken == n:
            n = schedule_first_k(T, S, dense, _RANKED, ranked, tables, everyone, last, interval, dist, pred)
            at, taken = E.now(S), 0
        E.set_victim(S, ranked[taken] if taken < n else -1)
        taken += 1
        decisions += 1
    return decisions


def predictor_of(prepared: PreparedTrace) -> SchedulePredictor:
    """The trace's :class:`SchedulePredictor`, built on first use and kept with the prepared trace (as its cached
    properties are), so every run and view of one trace shares one."""
    predictor = prepared.__dict__.get("_schedule_predictor")
    if predictor is None:
        predictor = prepared.__dict__["_schedule_predictor"] = SchedulePredictor(prepared)
    return predictor


class CompiledSchedule:
    """The ``schedule`` heuristic over one paused :class:`~envs.sim.simulator.Simulation`, every decision in
    compiled code: the same choices as the episode driver with :class:`agents.heuristics.ScheduleAware`
    (``tests/test_schedule.py`` compares them), about a hundred times faster."""

    def __init__(self, prepared: PreparedTrace) -> None:
        self.prepared = prepared
        self.tables = predictor_of(prepared).tables
        n_ids = max(int(prepared.sizes.shape[0]), 1)
        self._buffers = (np.empty(n_ids, dtype=np.int64), np.empty(n_ids, dtype=np.int64),
                         np.empty(n_ids, dtype=np.int64), np.empty((2, n_ids), dtype=np.float64))  # fmt: skip

    def play(self, sim, stop: int | None = None) -> int:
        """Runs ``sim`` (paused, on this trace) to access ``stop`` (default: the end); returns the decisions."""
        p = self.prepared
        end = p.tid.shape[0] if stop is None else int(stop)
        return int(play_schedule(sim.T, sim.S, sim.H, sim.dense, p.tid, p.opc, p.op_index, p.op_end, p.next_use, end,
                                 self.tables, *self._buffers))  # fmt: skip
