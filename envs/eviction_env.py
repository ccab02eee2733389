"""The Gymnasium environment ``tensorcache/Eviction-v0``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.features import (
    N_CAND_FEATURES,
    N_GLOBAL_FEATURES,
    FeatureBuilder,
)
from envs.sim import engine as E
from envs.sim.simulator import CANDIDATE_RULES, MODES, PreparedTrace, SimError, Simulation, parse_capacity, prepare
from envs.trace import Kind, Trace

ENV_ID = "tensorcache/Eviction-v0"
ENV_VERSION = "Eviction-v0"
REWARD_MODES = ("bytes", "hits")


class EvictionEnv(gym.Env):
    """Choose which tensor to evict from accelerator memory.

    ## Description
    A trace of tensor accesses (a training step, an inference run, ...) replays against a cache of ``capacity``
    bytes. Hits and admissions that need no eviction run inside the compiled simulator; the agent is asked only
    when an incoming tensor does not fit, and evicts one resident tensor per step until it does.

    ## Action Space
    ``Discrete(K)``: the index of the candidate to evict. Candidates are up to K resident tensors that are not
    operands of the running op: with ``candidates="lru"`` (default) the K least recently used, least recent
    first; with ``candidates="mixed"`` first the ceil(K/2) with the farthest *predicted* next use (last access +
    previous reuse interval, no interval = never; a past-only estimate), then the least recently used others.
    ``action_masks()`` and ``info["action_mask"]`` mark the valid indices. An invalid index (beyond the
    candidates) evicts candidate 0 (the least recently used under ``lru``, the farthest predicted next use under
    ``mixed``) and sets ``info["invalid_action"] = True``.

    ## Observation Space
    ``Box(-1, 1, (K * 17 + 12,), float32)``: K rows of per-candidate features, then global features. Nothing
    depends on future accesses.

    | index | observation | min | max |
    |---|---|---|---|
    | c*17+0 | candidate slot is valid | 0 | 1 |
    | c*17+1 | log2(size in bytes) / 40 | 0 | 1 |
    | c*17+2 | log2(1 + accesses since its last access) / 24 | 0 | 1 |
    | c*17+3 | log2(1 + accesses since admission) / 16 | 0 | 1 |
    | c*17+4 | log2(1 + previous reuse interval) / 24 | 0 | 1 |
    | c*17+5 | has a previous reuse interval | 0 | 1 |
    | c*17+6 | (last access + previous interval − now) / trace length, 1 if unknown | -1 | 1 |
    | c*17+7 | dirty (eviction costs a write-back) | 0 | 1 |
    | c*17+8 | (its layer − incoming tensor's layer) / number of layers | -1 | 1 |
    | c*17+9 | last accessed in the current iteration | 0 | 1 |
    | c*17+10..16 | tensor kind one-hot (weight, activation, gradient, optimizer_state, kv_cache, temporary, input) | 0 | 1 |
    | K*17+0 | log2(incoming size) / 40 | 0 | 1 |
    | K*17+1 | free bytes / capacity | 0 | 1 |
    | K*17+2 | incoming size / capacity | 0 | 1 |
    | K*17+3 | position in the trace | 0 | 1 |
    | K*17+4 | position in the current iteration | 0 | 1 |
    | K*17+5..11 | incoming tensor kind one-hot | 0 | 1 |

    ## Rewards
    ``reward="bytes"`` (default): −(bytes moved since the previous decision) / capacity, where bytes moved =
    bytes transferred in + dirty bytes written back. ``reward="hits"``: the number of hits since the previous
    decision. The remaining cost after the last decision is paid on the terminating step.

    ## Starting State
    A trace is chosen (from ``trace``/``trace_path``, or drawn with ``self.np_random`` from ``seeds`` of a
    workload, or from a benchmark-suite split) and replayed from its first access to the first decision.

    ## Episode End
    - Termination: the trace has been replayed to its end.
    - Truncation: ``max_episode_steps`` decisions (set at registration, 100 000; ``gymnasium.make`` can change it).

    ## Arguments
    - ``trace`` / ``trace_path``: a :class:`~envs.trace.Trace` or a trace file (npz, oracleGeneral or csv).
    - ``workload``, ``preset``, ``seeds``, ``layers``, ``iterations``, ``method``: generate traces from a workload;
      each reset draws one of ``seeds``.
    - ``suite``, ``split``: draw traces and capacities from a benchmark suite split (e.g. ``tcb-v1``, ``train``).
    - ``capacity``: bytes (int or ``"4GiB"``), or a float in (0, 1] = that fraction of the trace's peak live bytes.
    - ``k``: number of candidates offered (≥ 1). ``reward``: ``"bytes"`` or ``"hits"``.
    - ``mode``: ``"tensor"`` (default) or ``"classic"`` (see :mod:`envs.sim`).
    - ``candidates``: the candidate rule, ``"lru"`` (default) or ``"mixed"``.

    ## Version History
    - v0: initial version (observation layout above, LRU-ordered candidates, bytes-moved reward). The optional
      ``candidates="mixed"`` rule was added later; the default stays ``"lru"``, so v0 behaviour is unchanged.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        trace: Trace | None = None,
        trace_path: str | Path | None = None,
        workload: str | None = None,
        preset: str | None = None,
        seeds: Sequence[int] = (0,),
        layers: int | None = None,
        iterations: int | None = None,
        method: str = "captured",
        suite: str | None = None,
        split: str = "train",
        capacity: int | float | str = 0.5,
        k: int = 16,
        reward: str = "bytes",
        mode: str = "tensor",
        candidates: str = "lru",
        render_mode: str | None = None,
    ) -> None:
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if reward not in REWARD_MODES:
            raise ValueError(f"unknown reward mode {reward!r}; valid: {', '.join(REWARD_MODES)}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if candidates not in CANDIDATE_RULES:
            raise ValueError(f"unknown candidate rule {candidates!r}; valid: {', '.join(CANDIDATE_RULES)}")
        self.candidate_rule = candidates
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"unknown render mode {render_mode!r}; valid: ansi")
        self.k, self.reward_mode, self.mode, self.render_mode = int(k), reward, mode, render_mode
        self._capacity_arg = capacity
        _check_capacity_arg(capacity)
        self._sources = _trace_sources(
            trace, trace_path, workload, preset, seeds, layers, iterations, method, suite, split, capacity
        )
        self._prepared: dict[int, tuple[PreparedTrace, int, FeatureBuilder]] = {}
        if len(self._sources) == 1:
            self._load(0)  # fail at construction on a bad trace or capacity
        self.action_space = spaces.Discrete(self.k)
        n_obs = self.k * N_CAND_FEATURES + N_GLOBAL_FEATURES
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(n_obs,), dtype=np.float32)
        from agents.oracle import Oracle

        self.oracle = Oracle()
        self.sim: Simulation | None = None
        self._features: FeatureBuilder | None = None
        self._view = None
        self._cands: np.ndarray | None = None
        self._last_action: int | None = None

    # -- trace loading ------------------------------------------------------------------------------------------
    def _load(self, index: int) -> tuple[PreparedTrace, int, FeatureBuilder]:
        if index not in self._prepared:
            trace, capacity = self._sources[index]()
            prepared = prepare(trace, self.mode)
            cap = _resolve_capacity(capacity, trace)
            if not prepared.classic and prepared.op_bytes_max > cap:
                raise SimError(
                    f"capacity {cap} bytes cannot hold op {prepared.op_bytes_argmax}, whose operands need "
                    f"{prepared.op_bytes_max} bytes together"
                )
            self._prepared[index] = (prepared, cap, FeatureBuilder.for_trace(trace, self.k, self.candidate_rule))
        return self._prepared[index]

    # -- Gymnasium API ------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self._sources))) if len(self._sources) > 1 else 0
        prepared, cap, feats = self._load(index)
        self.sim = Simulation(prepared, cap, "lru", seed=int(self.np_random.integers(2**31)), pause=True)
        self.oracle.bind(self.sim)
        self._features = feats
        self._moved = self._hits = 0
        self._last_action = None
        self.sim.advance()
        return self._observe(), self._info(invalid=False)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.sim is None:
            raise RuntimeError("call reset() before step()")
        sim = self.sim
        invalid = False
        if not sim.done:
            cands = self._cands
            a = _as_index(action)
            if not 0 <= a < cands.shape[0]:
                invalid, a = True, 0
            self._last_action = a
            sim.evict(int(cands[a]))
            sim.advance()
        S = sim.S
        moved = S.item(E.S_BIN) + S.item(E.S_BOUT)
        hits = S.item(E.S_HITS)
        if self.reward_mode == "bytes":
            reward = -(moved - self._moved) / S.item(E.S_CAP)
        else:
            reward = float(hits - self._hits)
        self._moved, self._hits = moved, hits
        obs = self._observe()
        return obs, float(reward), bool(sim.done), False, self._info(invalid)

    def action_masks(self) -> np.ndarray:
        """Valid candidate indices (for sb3-contrib's MaskablePPO)."""
        mask = np.zeros(self.k, dtype=bool)
        if self._cands is not None and self.sim is not None and not self.sim.done:
            mask[: self._cands.shape[0]] = True
        else:
            mask[0] = True  # a terminal state still needs one legal action for maskable samplers
        return mask

    @property
    def view(self):
        """The current :class:`~envs.features.DecisionView` (None at the end of the trace); built on demand."""
        if self._view is None and self._cands is not None and self.sim is not None and self._features is not None:
            self._view = self._features.view(self.sim, self._cands)
        return self._view

    def _observe(self) -> np.ndarray:
        assert self.sim is not None and self._features is not None
        self._view = None
        if self.sim.done:
            self._cands = None
            return np.zeros(self.observation_space.shape, dtype=np.float32)
        self._cands = self.sim.candidates(self.k, self.candidate_rule)
        return self._features.observe(self.sim, self._cands)

    def _info(self, invalid: bool) -> dict[str, Any]:
        sim = self.sim
        assert sim is not None
        S = sim.S
        hits, b_in, b_out = int(S[E.S_HITS]), int(S[E.S_BIN]), int(S[E.S_BOUT])
        info: dict[str, Any] = {
            "hits": hits,
            "misses": int(S[E.S_NREQ]) - hits,
            "bytes_in": b_in,
            "bytes_out": b_out,
            "bytes_moved": b_in + b_out,
            "decisions": int(S[E.S_DECISIONS]),
            "action_mask": self.action_masks(),
            "invalid_action": invalid,
            "trace_hash": sim.prepared.trace.content_hash,
            "capacity_bytes": int(S[E.S_CAP]),
        }
        if sim.done:
            r = sim.result()
            info["byte_hit_ratio"] = r.byte_hit_ratio
            info["hit_ratio"] = r.hit_ratio
            info["result"] = r
        return info

    def render(self) -> str | None:
        if self.render_mode != "ansi" or self.sim is None:
            return None
        sim = self.sim
        T, S = sim.T, sim.S
        cap, used = int(S[E.S_CAP]), int(S[E.S_USED])
        res = T[:, E.F_RES] == 1
        kinds = self._features.kinds if self._features is not None else np.zeros(T.shape[0], dtype=np.uint8)
        lines = [f"t={sim.now} used {used / 2**20:.1f}/{cap / 2**20:.1f} MiB ({used / cap:.0%})"]
        occ = [f"{k.name.lower()}={T[res & (kinds == k), E.F_SIZE].sum() / 2**20:.1f}MiB" for k in Kind]
        lines.append("  by kind: " + ", ".join(o for o in occ if not o.endswith("=0.0MiB")))
        if self.view is not None:
            v = self.view
            inc = sim.incoming
            lines.append(f"  incoming #{inc} {Kind(kinds[inc]).name.lower()} {T[inc, E.F_SIZE] / 2**20:.2f}MiB")
            for j in range(v.n):
                lines.append(
                    f"  [{j:2d}] #{v.candidates[j]:<6d} {Kind(v.kind[j]).name.lower():<15} "
                    f"{v.size[j] / 2**20:9.2f}MiB age={v.now - v.last_access[j]:<7d} dirty={v.dirty[j]}"
                )
        if self._last_action is not None:
            lines.append(f"  last action: evicted candidate {self._last_action}")
        return "\n".join(lines)


def _as_index(action: Any) -> int:
    """A scalar action as an int; anything else (arrays of several values, None, ...) as -1 (invalid)."""
    if isinstance(action, (int, np.integer)):
        return int(action)
    if isinstance(action, np.ndarray) and action.size == 1:
        return int(action.reshape(()))
    return -1


def _check_capacity_arg(capacity: int | float | str) -> None:
    if isinstance(capacity, float):
        if not 0.0 < capacity <= 1.0 or np.isnan(capacity):
            raise ValueError(f"a fractional capacity must be in (0, 1], got {capacity!r}")
    else:
        parse_capacity(capacity)


def _resolve_capacity(capacity: int | float | str, trace: Trace) -> int:
    if isinstance(capacity, float):
        return max(int(capacity * trace.peak_live_bytes()), 1)
    return parse_capacity(capacity)


def _trace_sources(trace, trace_path, workload, preset, seeds, layers, iterations, method, suite, split, capacity):
    """A list of zero-argument loaders, each returning (trace, capacity)."""
    given = [x is not None for x in (trace, trace_path, workload, suite)]
    if sum(given) != 1:
        raise ValueError("give exactly one of trace, trace_path, workload (with preset) or suite")
    if trace is not None:
        return [lambda: (trace, capacity)]
    if trace_path is not None:
        from envs.traces import load_any

        loaded = load_any(trace_path)
        return [lambda: (loaded, capacity)]
    if workload is not None:
        from envs.workloads import generate_trace, get_workload

        w = get_workload(workload)
        if preset is None or preset not in w.presets():
            raise ValueError(f"workload {workload!r} needs a preset; valid: {', '.join(w.presets())}")
        if not seeds:
            raise ValueError("seeds must not be empty")
        return [
            (
                lambda s=s: (
                    generate_trace(workload, preset, layers=layers, iterations=iterations, seed=s, method=method),
                    capacity,
                )
            )
            for s in seeds
        ]
    from eval.suites import get_suite

    instances = get_suite(suite).instances(split)
    return [(lambda inst=inst: (inst.trace(), inst.capacity)) for inst in instances]
