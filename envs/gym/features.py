"""The sealed decision state and its observation features, shared by the env, label generation and the LLM
prompt, so all three see the same state.

A :class:`DecisionView` is a frozen record of what a legal policy may know at one eviction decision: the
candidates' past-only features and the global state (free bytes, the incoming tensor, progress so far). It holds
no simulator handle, so no policy can reach next-use times, even by accident; those live only behind
:class:`envs.sim.oracle.Oracle`.

Past-only: every field is a function of the accesses up to and including the current one. A tensor's layer and
kind are read at its last access; scales are constants or what has been seen so far (the deepest layer so far),
never the trace length or the length of the current iteration. ``tests/test_past_only.py`` cuts traces at op
boundaries and checks that every observation and prompt before the cut is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from envs.gym.schedule import DEAD, SchedulePredictor, predictor_of, preference
from envs.sim import engine as E
from envs.sim.prepared import PreparedTrace
from envs.trace import Kind, Phase

N_KINDS = len(Kind)
#: Per-candidate observation columns (see the env docstring's table).
CANDIDATE_FEATURES = (
    "valid",
    "log2_size",
    "log2_age",
    "log2_frequency",
    "log2_reuse_interval",
    "has_reuse_interval",
    "predicted_next_use",
    "dirty",
    "layer_delta",
    "same_iteration",
    *(f"kind_{k.name.lower()}" for k in Kind),
)
GLOBAL_FEATURES = (
    "log2_incoming_size",
    "free_fraction",
    "incoming_fraction_of_capacity",
    "log2_position",
    "log2_position_in_iteration",
    *(f"incoming_kind_{k.name.lower()}" for k in Kind),
)
N_CAND_FEATURES = len(CANDIDATE_FEATURES)
N_GLOBAL_FEATURES = len(GLOBAL_FEATURES)
#: Observation version 2 (``tensorcache/Eviction-v2``): version 1's columns, then what the schedule tells
#: (:mod:`envs.gym.schedule`) and the phases.
CANDIDATE_FEATURES_V2 = (
    *CANDIDATE_FEATURES,
    "schedule_log2_distance",
    "schedule_dead",
    "schedule_next_read",
    "schedule_choice",
    *(f"last_phase_{p.name.lower()}" for p in Phase),
)
GLOBAL_FEATURES_V2 = (
    *GLOBAL_FEATURES,
    *(f"phase_{p.name.lower()}" for p in Phase),
    "log2_position_in_phase",
    "has_previous_iteration",
)
OBSERVATION_VERSIONS = (1, 2)
_TABLES = {1: (CANDIDATE_FEATURES, GLOBAL_FEATURES), 2: (CANDIDATE_FEATURES_V2, GLOBAL_FEATURES_V2)}
_CAND = {name: i for i, name in enumerate(CANDIDATE_FEATURES_V2)}  # version 1's names keep their offsets in 2
_GLOBAL = {name: i for i, name in enumerate(GLOBAL_FEATURES_V2)}
# Named offsets into a candidate row and into the global block, looked up in the tables above (plain ints, so the
# compiled fillers read them as constants). Adding a feature: one name in a table, its offset here, its value in
# _fill_candidate / _fill_globals.
C_VALID, C_LOG2_SIZE, C_LOG2_AGE = _CAND["valid"], _CAND["log2_size"], _CAND["log2_age"]
C_LOG2_FREQUENCY, C_LOG2_REUSE_INTERVAL = _CAND["log2_frequency"], _CAND["log2_reuse_interval"]
C_HAS_REUSE_INTERVAL, C_PREDICTED_NEXT_USE = _CAND["has_reuse_interval"], _CAND["predicted_next_use"]
C_DIRTY, C_LAYER_DELTA, C_SAME_ITERATION = _CAND["dirty"], _CAND["layer_delta"], _CAND["same_iteration"]
C_KIND = _CAND[f"kind_{Kind(0).name.lower()}"]  # the one-hot kind block, in Kind order
G_LOG2_INCOMING_SIZE, G_FREE_FRACTION = _GLOBAL["log2_incoming_size"], _GLOBAL["free_fraction"]
G_INCOMING_FRACTION, G_LOG2_POSITION = _GLOBAL["incoming_fraction_of_capacity"], _GLOBAL["log2_position"]
G_LOG2_POSITION_IN_ITERATION = _GLOBAL["log2_position_in_iteration"]
G_INCOMING_KIND = _GLOBAL[f"incoming_kind_{Kind(0).name.lower()}"]  # the incoming tensor's one-hot kind block
C_LAST_PHASE = _CAND[f"last_phase_{Phase(0).name.lower()}"]  # version 2: the one-hot phase at the last access
G_PHASE = _GLOBAL[f"phase_{Phase(0).name.lower()}"]  # version 2: the current access's one-hot phase
C_SCHEDULE_LOG2_DISTANCE, C_SCHEDULE_DEAD = _CAND["schedule_log2_distance"], _CAND["schedule_dead"]
C_SCHEDULE_NEXT_READ, C_SCHEDULE_CHOICE = _CAND["schedule_next_read"], _CAND["schedule_choice"]
G_LOG2_POSITION_IN_PHASE, G_HAS_PREVIOUS_ITERATION = _GLOBAL["log2_position_in_phase"], _GLOBAL["has_previous_iteration"]
N_CAND_FEATURES_V2, N_GLOBAL_FEATURES_V2 = len(CANDIDATE_FEATURES_V2), len(GLOBAL_FEATURES_V2)


def feature_tables(version: int = 1) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The (per-candidate, global) feature names of observation ``version`` (ValueError naming the valid ones)."""
    if version not in _TABLES:
        raise ValueError(f"unknown observation version {version!r}; valid: {', '.join(map(str, OBSERVATION_VERSIONS))}")
    return _TABLES[version]


def candidate_feature(name: str) -> int:
    """Column of the per-candidate feature ``name`` in a candidate row of any version that has it (ValueError
    naming the valid ones)."""
    if name not in _CAND:
        raise ValueError(f"unknown candidate feature {name!r}; valid: {', '.join(CANDIDATE_FEATURES_V2)}")
    return _CAND[name]


def global_feature(name: str) -> int:
    """Offset of the global feature ``name`` after the candidate slots, in any version that has it (ValueError
    naming the valid ones)."""
    if name not in _GLOBAL:
        raise ValueError(f"unknown global feature {name!r}; valid: {', '.join(GLOBAL_FEATURES_V2)}")
    return _GLOBAL[name]


def split_observation(obs: np.ndarray, k: int, version: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The candidate table (``k`` rows of the version's candidate features) and the global features of a flat
    observation (or of a batch of them, leading axes kept); views, no copy."""
    obs = np.asarray(obs)
    n_cand = len(feature_tables(version)[0])
    if obs.shape[-1] != observation_size(k, version):
        raise ValueError(f"an observation for k={k} has {observation_size(k, version)} values, got {obs.shape[-1]}")
    cut = k * n_cand
    return obs[..., :cut].reshape(*obs.shape[:-1], k, n_cand), obs[..., cut:]


def observation_size(k: int, version: int = 1) -> int:
    """Length of the flat observation of ``version`` for ``k`` candidate slots."""
    cand, glob = feature_tables(version)
    return k * len(cand) + len(glob)


@dataclass(frozen=True, eq=False)
class DecisionView:
    """What a legal policy may see at one eviction decision (arrays are per candidate, in candidate order).

    Attributes:
        candidates: Tensor ids offered for eviction (resident, not operands of the running op).
        size: Bytes of each candidate.
        last_access: Access index of each candidate's last access.
        insert_time: Access index of its admission.
        frequency: Accesses since admission.
        reuse_interval: Its previous reuse interval in accesses (0 = none seen yet).
        dirty: 1 when evicting it writes it back.
        kind: Its :class:`~envs.trace.Kind` at its last access.
        layer: Its layer at its last access.
        now: Index of the current access.
        incoming: Tensor id that needs room; ``incoming_size``/``incoming_kind``/``incoming_layer`` describe it.
        capacity: Cache capacity in bytes; ``used_bytes`` are resident now.
        iteration_start: Access index where the current iteration (training step, decode step) began.
        layers_seen: One more than the deepest layer accessed so far.
        k: Candidate slots of the observation (``n <= k``).
        engine_choice: Candidate index the episode's built-in (legal) engine policy evicts here, for policies
            whose state lives in the engine (SIEVE, Random); None unless the episode was asked for it.
        schedule_distance: Accesses until each candidate's predicted next use from the schedule of the previous
            iteration (:mod:`envs.gym.schedule`; past-only); None unless the episode was asked for it.
        schedule_next_read: 1.0 where that predicted use is a READ (evicting costs a read-back), else 0.0.
        last_phase: Each candidate's :class:`~envs.trace.Phase` at its last access.
        phase: The phase of the current access; ``phase_start`` the access where its run of that phase began.
        iteration: The iteration of the current access.
    """

    candidates: np.ndarray
    size: np.ndarray
    last_access: np.ndarray
    insert_time: np.ndarray
    frequency: np.ndarray
    reuse_interval: np.ndarray
    dirty: np.ndarray
    kind: np.ndarray
    layer: np.ndarray
    now: int
    incoming: int
    incoming_size: int
    incoming_kind: int
    incoming_layer: int
    capacity: int
    used_bytes: int
    iteration_start: int
    layers_seen: int
    k: int
    engine_choice: int | None = None
    schedule_distance: np.ndarray | None = None
    schedule_next_read: np.ndarray | None = None
    last_phase: np.ndarray | None = None
    phase: int = 0
    phase_start: int = 0
    iteration: int = 0

    @property
    def n(self) -> int:
        """Number of candidates."""
        return int(self.candidates.shape[0])

    @property
    def free_bytes(self) -> int:
        return self.capacity - self.used_bytes

    def mask(self) -> np.ndarray:
        """Valid candidate slots (``k`` booleans)."""
        m = np.zeros(self.k, dtype=bool)
        m[: self.n] = True
        return m

    def observation(self, version: int = 1) -> np.ndarray:
        """The env's flat float32 observation of this decision in ``version`` (the table in the env docstring;
        version 2 needs a view with schedule predictions)."""
        if version != 1:
            return self._observation_v2(version)
        cached = self.__dict__.get("_obs")
        if cached is None:
            cached = np.zeros(observation_size(self.k), dtype=np.float32)
            _fill_observation(
                self.size, self.last_access, self.frequency, self.reuse_interval, self.dirty, self.kind, self.layer,
                self.now, self.incoming_size, self.incoming_kind, self.incoming_layer, self.capacity, self.used_bytes,
                self.iteration_start, self.layers_seen, self.k, cached,
            )  # fmt: skip
            cached.flags.writeable = False
            self.__dict__["_obs"] = cached
        return cached

    def _observation_v2(self, version: int) -> np.ndarray:
        cached = self.__dict__.get("_obs_v2")
        if cached is not None:
            return cached
        if self.schedule_distance is None:
            raise ValueError("observation version 2 needs a view with schedule predictions (Episode(schedule=True))")
        k, n = self.k, self.n
        out = np.zeros(observation_size(k, version), dtype=np.float32)
        table, globals_ = split_observation(out, k, version)
        old_table, old_globals = split_observation(self.observation(), k)
        table[:, :N_CAND_FEATURES] = old_table
        globals_[:N_GLOBAL_FEATURES] = old_globals
        dist = self.schedule_distance
        dead = dist >= DEAD / 2
        log_dist = np.clip(np.log2(1.0 + np.maximum(dist, 0.0)) / 24.0, 0.0, 1.0)
        table[:n, candidate_feature("schedule_log2_distance")] = np.where(dead, 1.0, log_dist)
        table[:n, candidate_feature("schedule_dead")] = dead
        table[:n, candidate_feature("schedule_next_read")] = self.schedule_next_read
        if n:
            first = preference(dist, self.schedule_next_read, self.dirty, self.last_access, self.candidates)[0]
            table[first, candidate_feature("schedule_choice")] = 1.0
        table[np.arange(n), C_LAST_PHASE + self.last_phase] = 1.0
        globals_[G_PHASE + self.phase] = 1.0
        globals_[global_feature("log2_position_in_phase")] = min(np.log2(1.0 + (self.now - self.phase_start)) / 24.0, 1.0)
        globals_[global_feature("has_previous_iteration")] = 1.0 if self.iteration > 0 else 0.0
        out.flags.writeable = False
        self.__dict__["_obs_v2"] = out
        return out


#: Rows of :attr:`FeatureBuilder.block`: the engine's per-access arrays, then the feature columns.
(
    ROW_TID,
    ROW_OP,
    ROW_OP_INDEX,
    ROW_OP_END,
    ROW_NEXT_USE,
    ROW_LAYER,
    ROW_KIND,
    ROW_LAYERS_SEEN,
    ROW_ITERATION_START,
) = range(9)


class FeatureBuilder:
    """Per-trace lookup arrays and the builder of :class:`DecisionView` objects from a paused simulation.

    Everything precomputed here is indexed by access position and read only at or before the current access.
    The engine's arrays of the prepared trace and the feature columns live in one int64 block, so the fused step
    (:mod:`envs.gym.step_kernel`) takes one array instead of nine; :attr:`prepared` is the prepared trace with its
    arrays as rows of that block (same values; the op codes widened to int64), and episodes run on it.

    Args:
        prepared: Output of :func:`envs.sim.prepare`.
    """

    def __init__(self, prepared: PreparedTrace) -> None:
        trace = prepared.trace
        n = len(trace)  # >= 1: prepare() refuses an empty trace
        #: Rows ``ROW_*``, one int64 value per access position.
        self.block = np.empty((9, n), dtype=np.int64)
        b = self.block
        for row, values in ((ROW_TID, prepared.tid), (ROW_OP, prepared.opc), (ROW_OP_INDEX, prepared.op_index),
                            (ROW_OP_END, prepared.op_end), (ROW_NEXT_USE, prepared.next_use)):  # fmt: skip
            b[row] = values
        self.source = prepared
        self.prepared = prepared.with_arrays(b[ROW_TID], b[ROW_OP], b[ROW_OP_INDEX], b[ROW_OP_END], b[ROW_NEXT_USE])
        self.access_layer, self.access_kind = b[ROW_LAYER], b[ROW_KIND]
        self.layers_seen, self.iteration_start = b[ROW_LAYERS_SEEN], b[ROW_ITERATION_START]
        self.access_layer[:] = trace.layer
        self.access_kind[:] = trace.kind
        np.maximum.accumulate(np.maximum(self.access_layer, 0) + 1, out=self.layers_seen)
        its = trace.iteration.astype(np.int64)
        start = np.full(int(its.max()) + 1, n, dtype=np.int64)
        np.minimum.at(start, its, np.arange(n))
        self.iteration_start[:] = start[its]
        self.access_iteration = its
        # the phase of every access, and where its run of that phase (within its iteration) began: past-only
        self.access_phase = trace.phase.astype(np.int64)
        change = np.ones(n, dtype=bool)
        change[1:] = (self.access_phase[1:] != self.access_phase[:-1]) | (its[1:] != its[:-1])
        self.phase_start = np.maximum.accumulate(np.where(change, np.arange(n), 0))

    @property
    def schedule(self) -> SchedulePredictor:
        """The schedule-aware next-use predictor of this trace (built on first use)."""
        return predictor_of(self.source)

    def fused_scratch(self, k: int, version: int) -> tuple:
        """The arguments :func:`envs.gym.step_kernel.decide_any` takes after the decision's own, for ``k``
        candidate slots and observation ``version``: the schedule's tables, scratch buffers and the phase columns."""
        n_ids = max(int(self.source.sizes.shape[0]), 1)
        scratch = (np.empty(n_ids, dtype=np.int64), np.empty(n_ids, dtype=np.int64), np.empty(n_ids, dtype=np.int64),
                   np.empty((2, n_ids)), np.empty((2, k)), np.zeros(observation_size(k), dtype=np.float32))  # fmt: skip
        return (version, self.schedule.tables, *scratch, self.access_phase, self.phase_start, self.access_iteration)

    def owns(self, prepared: PreparedTrace) -> bool:
        """Whether this builder was made from ``prepared`` (or is its :attr:`prepared`)."""
        return prepared is self.prepared or prepared is self.source

    def view(self, sim, candidates: np.ndarray, k: int, engine_choice: int | None = None, schedule: bool = False,
             prediction: np.ndarray | None = None) -> DecisionView:  # fmt: skip
        """The sealed view of ``sim``'s pending decision with these ``candidates`` (with ``schedule``, also their
        schedule-aware predictions: ``prediction`` when the caller already has them, rows as
        :meth:`SchedulePredictor.predict` returns, else computed here)."""
        state = sim.tensor_state(candidates)  # one gather; each field below is a row of it
        last = state.last_access
        now = sim.now
        inc = sim.incoming
        pos = min(now, self.access_layer.shape[0] - 1)
        fields = {}
        if schedule:
            if prediction is None:
                prediction = self.schedule.predict(now, candidates, last, state.reuse_interval)
            fields = {"schedule_distance": prediction[0], "schedule_next_read": prediction[1]}
        view = object.__new__(DecisionView)  # the frozen dataclass's fields, set without its per-field __setattr__
        view.__dict__.update(
            candidates=candidates,
            size=state.size,
            last_access=last,
            insert_time=state.insert_time,
            frequency=state.frequency,
            reuse_interval=state.reuse_interval,
            dirty=state.dirty,
            kind=self.access_kind[last],
            layer=self.access_layer[last],
            now=now,
            incoming=inc,
            incoming_size=sim.tensor_size(inc) if inc >= 0 else 1,
            incoming_kind=self.access_kind.item(pos),
            incoming_layer=self.access_layer.item(pos),
            capacity=sim.capacity,
            used_bytes=sim.used_bytes,
            iteration_start=self.iteration_start.item(pos),
            layers_seen=self.layers_seen.item(pos),
            k=k,
            engine_choice=engine_choice,
            last_phase=self.access_phase[last],
            phase=self.access_phase.item(pos),
            phase_start=self.phase_start.item(pos),
            iteration=self.access_iteration.item(pos),
            **fields,
        )
        return view


@numba.njit(cache=True)
def _clip(x, lo, hi):  # pragma: no cover - compiled
    return min(max(x, lo), hi)


@numba.njit(cache=True, inline="always")
def _fill_candidate(out, j, size, last, freq, iv, dirty, kind, layer, now, inc_layer, it_start,
                    layers_seen):  # pragma: no cover - compiled  # fmt: skip
    """Writes candidate slot ``j``'s row of the observation table (float64 arithmetic, float32 storage)."""
    b = j * N_CAND_FEATURES
    out[b + C_VALID] = 1.0
    out[b + C_LOG2_SIZE] = _clip(np.log2(float(size)) / 40.0, 0.0, 1.0)
    out[b + C_LOG2_AGE] = _clip(np.log2(1.0 + float(now - last)) / 24.0, 0.0, 1.0)
    out[b + C_LOG2_FREQUENCY] = _clip(np.log2(1.0 + float(freq)) / 16.0, 0.0, 1.0)
    out[b + C_LOG2_REUSE_INTERVAL] = _clip(np.log2(1.0 + float(iv)) / 24.0, 0.0, 1.0)
    out[b + C_HAS_REUSE_INTERVAL] = 1.0 if iv > 0 else 0.0
    if iv > 0:
        ahead = float(last + iv - now)
        mag = np.log2(1.0 + abs(ahead)) / 24.0
        out[b + C_PREDICTED_NEXT_USE] = _clip(mag if ahead >= 0 else -mag, -1.0, 1.0)
    else:
        out[b + C_PREDICTED_NEXT_USE] = 1.0
    out[b + C_DIRTY] = float(dirty)
    out[b + C_LAYER_DELTA] = _clip(float(layer - inc_layer) / layers_seen, -1.0, 1.0)
    out[b + C_SAME_ITERATION] = 1.0 if last >= it_start else 0.0
    out[b + C_KIND + kind] = 1.0


@numba.njit(cache=True, inline="always")
def _fill_globals(out, k, now, inc_size, inc_kind, cap, used, it_start):  # pragma: no cover - compiled
    """Writes the global features after the ``k`` candidate slots."""
    g = k * N_CAND_FEATURES
    c = float(cap)
    out[g + G_LOG2_INCOMING_SIZE] = _clip(np.log2(float(inc_size)) / 40.0, 0.0, 1.0)
    out[g + G_FREE_FRACTION] = _clip((c - float(used)) / c, 0.0, 1.0)
    out[g + G_INCOMING_FRACTION] = _clip(float(inc_size) / c, 0.0, 1.0)
    out[g + G_LOG2_POSITION] = _clip(np.log2(1.0 + float(now)) / 32.0, 0.0, 1.0)
    out[g + G_LOG2_POSITION_IN_ITERATION] = _clip(np.log2(1.0 + float(now - it_start)) / 24.0, 0.0, 1.0)
    out[g + G_INCOMING_KIND + inc_kind] = 1.0


@numba.njit(cache=True)
def _fill_observation(size, last, freq, iv, dirty, kind, layer, now, inc_size, inc_kind, inc_layer, cap, used,
                      it_start, layers_seen, k, out):  # pragma: no cover - compiled  # fmt: skip
    """Writes the observation table of the env docstring into ``out`` (zeroed) from a view's arrays, every value
    clipped into its declared bounds."""
    for j in range(size.shape[0]):
        _fill_candidate(out, j, size[j], last[j], freq[j], iv[j], dirty[j], kind[j], layer[j], now, inc_layer,
                        it_start, layers_seen)  # fmt: skip
    _fill_globals(out, k, now, inc_size, inc_kind, cap, used, it_start)


@numba.njit(cache=True)
def fill_observation_from_state(T, S, block, cands, n, k, out):  # pragma: no cover - compiled
    """Writes the observation of a paused simulation's pending decision into ``out`` (zeroed), reading the
    engine's state directly: the same values :meth:`DecisionView.observation` computes from a view of it.

    Args:
        T: The engine's per-tensor matrix; S: its scalars.
        block: :attr:`FeatureBuilder.block`.
        cands: Candidate tensor ids; the first ``n`` are offered.
        n: Number of candidates; k: candidate slots.
        out: The float32 observation to fill.
    """
    now = E.now(S)
    inc = E.incoming(S)
    pos = min(now, block.shape[1] - 1)
    inc_layer = block[ROW_LAYER, pos]
    it_start = block[ROW_ITERATION_START, pos]
    layers_seen = block[ROW_LAYERS_SEEN, pos]
    for j in range(n):
        t = cands[j]
        last = E.tensor_last_access(T, t)
        _fill_candidate(out, j, E.tensor_size(T, t), last, E.tensor_frequency(T, t), E.tensor_reuse_interval(T, t),
                        E.tensor_dirty(T, t),
                        block[ROW_KIND, last], block[ROW_LAYER, last], now, inc_layer, it_start, layers_seen)  # fmt: skip
    inc_size = E.tensor_size(T, inc) if inc >= 0 else 1
    _fill_globals(out, k, now, inc_size, block[ROW_KIND, pos], E.capacity(S), E.used_bytes(S), it_start)
