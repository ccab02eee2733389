"""Decision state and observation features, shared by the env, label generation and the LLM prompt so all
three see the same state. Nothing here reads next-use times: only :class:`agents.oracle.Oracle` does.

Candidate rule: up to K resident tensors that are not operands of the running op, least recently used first.
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def n(self) -> int:
        return int(self.candidates.shape[0])


class FeatureBuilder:
    """Builds :class:`DecisionView` objects and fixed-shape observations for one trace."""

    def __init__(self, trace_kinds: np.ndarray, trace_layers: np.ndarray, iteration: np.ndarray, k: int) -> None:
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
    def for_trace(cls, trace, k: int) -> FeatureBuilder:
        layer_of = np.zeros(trace.n_tensors, dtype=np.int64)
        layer_of[trace.tensor_id] = trace.layer
        return cls(trace.tensor_kinds(), layer_of, trace.iteration, k)

    def view(self, sim: Simulation) -> DecisionView:
        """The current decision of ``sim`` (which must be paused at one)."""
        cand = sim.candidates(self.k)
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
        )

    def observation(self, view: DecisionView) -> np.ndarray:
        """Flat float32 vector: K candidate rows of ``CANDIDATE_FEATURES`` then ``GLOBAL_FEATURES``."""
        k, n = self.k, view.n
        cand = np.zeros((k, N_CAND_FEATURES), dtype=np.float32)
        if n:
            now = float(view.now)
            age = now - view.last_access
            iv = view.reuse_interval.astype(np.float64)
            pred = np.where(iv > 0, (view.last_access + iv - now) / self.n_acc, 1.0)
            inc = view.incoming
            inc_layer = self.layers[inc] if inc >= 0 else 0
            cand[:n, 0] = 1.0
            cand[:n, 1] = np.log2(view.size.astype(np.float64)) / 40.0
            cand[:n, 2] = np.log2(1.0 + age) / 24.0
            cand[:n, 3] = np.log2(1.0 + view.frequency) / 16.0
            cand[:n, 4] = np.log2(1.0 + iv) / 24.0
            cand[:n, 5] = iv > 0
            cand[:n, 6] = np.clip(pred, -1.0, 1.0)
            cand[:n, 7] = view.dirty
            cand[:n, 8] = (view.layer - inc_layer) / self.n_layers
            cur_it = self.iteration[min(view.now, self.n_acc - 1)]
            cand[:n, 9] = view.last_access >= self.it_start[cur_it]
            cand[np.arange(n), 10 + view.kind] = 1.0
        g = np.zeros(N_GLOBAL_FEATURES, dtype=np.float32)
        sim = view.sim
        cap = float(sim.S[E.S_CAP])
        inc = view.incoming
        inc_size = float(sim.T[inc, E.F_SIZE]) if inc >= 0 else 1.0
        pos = min(view.now, self.n_acc - 1)
        it = self.iteration[pos]
        g[0] = np.log2(inc_size) / 40.0
        g[1] = (cap - sim.S[E.S_USED]) / cap
        g[2] = min(inc_size / cap, 1.0)
        g[3] = view.now / self.n_acc
        g[4] = (pos - self.it_start[it]) / max(self.it_len[it], 1)
        if inc >= 0:
            g[5 + self.kinds[inc]] = 1.0
        return np.concatenate([cand.ravel(), g])
