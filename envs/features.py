"""Decision state and observation features, shared by the env, label generation and the LLM prompt so all
three see the same state. Nothing here reads next-use times: only :class:`agents.oracle.Oracle` does.

Candidate rule: up to K resident tensors that are not operands of the running op, chosen by the rule named in
:data:`envs.sim.simulator.CANDIDATE_RULES` (``lru`` by default).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from envs.sim import engine as E
from envs.sim.simulator import Simulation
from envs.trace import Kind

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
    "trace_progress",
    "iteration_progress",
    *(f"incoming_kind_{k.name.lower()}" for k in Kind),
)
N_CAND_FEATURES = len(CANDIDATE_FEATURES)
N_GLOBAL_FEATURES = len(GLOBAL_FEATURES)


@dataclass(frozen=True)
class DecisionView:
    """What a legal policy may see at one eviction decision (arrays are per candidate)."""

    sim: Simulation
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
    builder: FeatureBuilder | None = None

    @property
    def n(self) -> int:
        return int(self.candidates.shape[0])

    def observation(self) -> np.ndarray:
        """The env's flat observation of this decision (needs the builder that made the view)."""
        if self.builder is None:
            raise RuntimeError("this DecisionView was built without a FeatureBuilder")
        return self.builder.observation(self)


class FeatureBuilder:
    """Builds :class:`DecisionView` objects and fixed-shape observations for one trace."""

    def __init__(
        self, trace_kinds: np.ndarray, trace_layers: np.ndarray, iteration: np.ndarray, k: int, rule: str = "lru"
    ) -> None:
        self.rule = rule
        self.kinds = trace_kinds
        self.layers = trace_layers
        self.iteration = iteration
        self.k = k
        self.n_layers = max(int(trace_layers.max()) + 1, 1) if trace_layers.size else 1
        n_acc = iteration.shape[0]
        # start and length of each iteration (for the position-in-iteration feature)
        its = iteration.astype(np.int64)
        n_it = int(its.max()) + 1 if n_acc else 1
        self.it_start = np.full(n_it, n_acc, dtype=np.int64)
        np.minimum.at(self.it_start, its, np.arange(n_acc))
        self.it_len = np.bincount(its, minlength=n_it).astype(np.int64)
        self.n_acc = max(n_acc, 1)

    @classmethod
    def for_trace(cls, trace, k: int, rule: str = "lru") -> FeatureBuilder:
        layer_of = np.zeros(trace.n_tensors, dtype=np.int64)
        layer_of[trace.tensor_id] = trace.layer
        return cls(trace.tensor_kinds(), layer_of, trace.iteration, k, rule)

    def view(self, sim: Simulation, candidates: np.ndarray | None = None) -> DecisionView:
        """The current decision of ``sim`` (which must be paused at one), with ``candidates`` if already chosen."""
        cand = sim.candidates(self.k, self.rule) if candidates is None else candidates
        rows = sim.T[cand]
        return DecisionView(
            sim=sim,
            candidates=cand,
            size=rows[:, E.F_SIZE],
            last_access=rows[:, E.F_LAST],
            insert_time=rows[:, E.F_INSERT],
            frequency=rows[:, E.F_FREQ],
            reuse_interval=rows[:, E.F_INTERVAL],
            dirty=rows[:, E.F_DIRTY],
            kind=self.kinds[cand],
            layer=self.layers[cand],
            now=sim.now,
            incoming=sim.incoming,
            builder=self,
        )

    def observation(self, view: DecisionView) -> np.ndarray:
        """Flat float32 vector: K candidate rows of ``CANDIDATE_FEATURES`` then ``GLOBAL_FEATURES``.

        Reads the simulation's current state, so call it at the decision the view describes.
        """
        return self.observe(view.sim, view.candidates)

    def observe(self, sim: Simulation, candidates: np.ndarray) -> np.ndarray:
        """The observation of ``sim``'s pending decision with these ``candidates`` (compiled)."""
        out = np.zeros(self.k * N_CAND_FEATURES + N_GLOBAL_FEATURES, dtype=np.float32)
        _fill_observation(
            sim.T, sim.S, candidates, self.kinds, self.layers, self.iteration, self.it_start, self.it_len,
            self.n_acc, self.n_layers, self.k, out,
        )  # fmt: skip
        return out


@numba.njit(cache=True)
def _fill_observation(T, S, cand, kinds, layers, iteration, it_start, it_len, n_acc, n_layers, k, out):  # pragma: no cover
    """Writes the observation table of the env docstring into ``out`` (float64 arithmetic, float32 storage)."""
    now = S[E.S_POS]
    inc = S[E.S_INCOMING]
    inc_layer = layers[inc] if inc >= 0 else 0
    pos = min(now, n_acc - 1)
    it = iteration[pos]
    f = N_CAND_FEATURES
    for j in range(cand.shape[0]):
        t = cand[j]
        b = j * f
        last = T[t, E.F_LAST]
        iv = T[t, E.F_INTERVAL]
        out[b + 0] = 1.0
        out[b + 1] = np.log2(float(T[t, E.F_SIZE])) / 40.0
        out[b + 2] = np.log2(1.0 + float(now - last)) / 24.0
        out[b + 3] = np.log2(1.0 + float(T[t, E.F_FREQ])) / 16.0
        out[b + 4] = np.log2(1.0 + float(iv)) / 24.0
        out[b + 5] = 1.0 if iv > 0 else 0.0
        pred = (float(last + iv) - float(now)) / n_acc if iv > 0 else 1.0
        out[b + 6] = min(max(pred, -1.0), 1.0)
        out[b + 7] = float(T[t, E.F_DIRTY])
        out[b + 8] = float(layers[t] - inc_layer) / n_layers
        out[b + 9] = 1.0 if last >= it_start[it] else 0.0
        out[b + 10 + kinds[t]] = 1.0
    g = k * f
    cap = float(S[E.S_CAP])
    inc_size = float(T[inc, E.F_SIZE]) if inc >= 0 else 1.0
    out[g + 0] = np.log2(inc_size) / 40.0
    out[g + 1] = (cap - float(S[E.S_USED])) / cap
    out[g + 2] = min(inc_size / cap, 1.0)
    out[g + 3] = float(now) / n_acc
    out[g + 4] = float(pos - it_start[it]) / max(it_len[it], 1)
    if inc >= 0:
        out[g + 5 + kinds[inc]] = 1.0
