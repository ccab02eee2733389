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

from envs.sim import engine as E
from envs.trace import Kind, Trace

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


def observation_size(k: int) -> int:
    """Length of the flat observation for ``k`` candidate slots."""
    return k * N_CAND_FEATURES + N_GLOBAL_FEATURES


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

    def observation(self) -> np.ndarray:
        """The env's flat float32 observation of this decision (the table in the env docstring)."""
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


class FeatureBuilder:
    """Per-trace lookup arrays and the builder of :class:`DecisionView` objects from a paused simulation.

    Everything precomputed here is indexed by access position and read only at or before the current access.
    """

    def __init__(self, trace: Trace) -> None:
        n = len(trace)
        self.access_layer = trace.layer.astype(np.int64)
        self.access_kind = trace.kind.astype(np.int64)
        self.layers_seen = (np.maximum.accumulate(np.maximum(self.access_layer, 0)) + 1) if n else np.ones(1, np.int64)
        its = trace.iteration.astype(np.int64)
        # start of the iteration each access belongs to (that start is at or before the access)
        start = np.full(int(its.max()) + 1 if n else 1, n, dtype=np.int64)
        np.minimum.at(start, its, np.arange(n))
        self.iteration_start = start[its] if n else np.zeros(1, np.int64)

    def view(self, sim, candidates: np.ndarray, k: int, engine_choice: int | None = None) -> DecisionView:
        """The sealed view of ``sim``'s pending decision with these ``candidates``."""
        T, S = sim.T, sim.S
        rows = T[candidates].T  # one gather; each field below is a row of it
        last = rows[E.F_LAST]
        now = S.item(E.S_POS)
        inc = S.item(E.S_INCOMING)
        pos = min(now, self.access_layer.shape[0] - 1)
        view = object.__new__(DecisionView)  # the frozen dataclass's fields, set without its per-field __setattr__
        view.__dict__.update(
            candidates=candidates,
            size=rows[E.F_SIZE],
            last_access=last,
            insert_time=rows[E.F_INSERT],
            frequency=rows[E.F_FREQ],
            reuse_interval=rows[E.F_INTERVAL],
            dirty=rows[E.F_DIRTY],
            kind=self.access_kind[last],
            layer=self.access_layer[last],
            now=now,
            incoming=inc,
            incoming_size=T.item(inc, E.F_SIZE) if inc >= 0 else 1,
            incoming_kind=self.access_kind.item(pos),
            incoming_layer=self.access_layer.item(pos),
            capacity=S.item(E.S_CAP),
            used_bytes=S.item(E.S_USED),
            iteration_start=self.iteration_start.item(pos),
            layers_seen=self.layers_seen.item(pos),
            k=k,
            engine_choice=engine_choice,
        )
        return view


@numba.njit(cache=True)
def _clip(x, lo, hi):  # pragma: no cover - compiled
    return min(max(x, lo), hi)


@numba.njit(cache=True)
def _fill_observation(size, last, freq, iv, dirty, kind, layer, now, inc_size, inc_kind, inc_layer, cap, used,
                      it_start, layers_seen, k, out):  # pragma: no cover - compiled  # fmt: skip
    """Writes the observation table of the env docstring into ``out`` (float64 arithmetic, float32 storage),
    every value clipped into its declared bounds."""
    f = N_CAND_FEATURES
    for j in range(size.shape[0]):
        b = j * f
        out[b + 0] = 1.0
        out[b + 1] = _clip(np.log2(float(size[j])) / 40.0, 0.0, 1.0)
        out[b + 2] = _clip(np.log2(1.0 + float(now - last[j])) / 24.0, 0.0, 1.0)
        out[b + 3] = _clip(np.log2(1.0 + float(freq[j])) / 16.0, 0.0, 1.0)
        out[b + 4] = _clip(np.log2(1.0 + float(iv[j])) / 24.0, 0.0, 1.0)
        out[b + 5] = 1.0 if iv[j] > 0 else 0.0
        if iv[j] > 0:
            ahead = float(last[j] + iv[j] - now)
            mag = np.log2(1.0 + abs(ahead)) / 24.0
            out[b + 6] = _clip(mag if ahead >= 0 else -mag, -1.0, 1.0)
        else:
            out[b + 6] = 1.0
        out[b + 7] = float(dirty[j])
        out[b + 8] = _clip(float(layer[j] - inc_layer) / layers_seen, -1.0, 1.0)
        out[b + 9] = 1.0 if last[j] >= it_start else 0.0
        out[b + 10 + kind[j]] = 1.0
    g = k * f
    c = float(cap)
    out[g + 0] = _clip(np.log2(float(inc_size)) / 40.0, 0.0, 1.0)
    out[g + 1] = _clip((c - float(used)) / c, 0.0, 1.0)
    out[g + 2] = _clip(float(inc_size) / c, 0.0, 1.0)
    out[g + 3] = _clip(np.log2(1.0 + float(now)) / 32.0, 0.0, 1.0)
    out[g + 4] = _clip(np.log2(1.0 + float(now - it_start)) / 24.0, 0.0, 1.0)
    out[g + 5 + inc_kind] = 1.0
