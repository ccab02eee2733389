"""The Gymnasium environment ``tensorcache/Eviction-v1``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.gym.episode import EPISODE_RULES, Episode
from envs.gym.features import OBSERVATION_VERSIONS, FeatureBuilder, observation_size
from envs.gym.sources import trace_sources
from envs.sim.capacity import Headroom, check_capacity_spec, describe_capacity, resolve_capacity
from envs.sim.prepared import MODES, PreparedTrace, prepare
from envs.sim.simulator import simulate
from envs.sim.step_time import DEFAULT_ACCELERATOR, StepModel, step_time
from envs.trace import Kind, Trace

REWARD_MODES = ("bytes", "hits")
RENDER_MODES = ("ansi", "rgb_array")
#: What ``gymnasium.make("tensorcache/Eviction-v1")`` with no trace argument plays.
DEFAULT_SUITE, DEFAULT_SPLIT = "tcb-v2", "train"


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
    ``Box(-1, 1, (observation_size(K),), float32)``: K rows of the per-candidate features
    (:data:`~envs.gym.features.CANDIDATE_FEATURES`), then the global features
    (:data:`~envs.gym.features.GLOBAL_FEATURES`); empty slots are zero. The feature of candidate ``c`` called
    ``name`` is at ``c * N_CAND_FEATURES + candidate_feature(name)``, a global one at
    ``K * N_CAND_FEATURES + global_feature(name)`` (:func:`~envs.gym.features.split_observation` cuts a flat
    observation into the two). Every value is clipped into its bounds. Nothing depends on anything after the current
    access: no trace length, no iteration length, no future access of any tensor (``tests/test_past_only.py``).

    | feature | observation | min | max |
    |---|---|---|---|
    | ``valid`` | candidate slot is valid | 0 | 1 |
    | ``log2_size`` | log2(size in bytes) / 40 | 0 | 1 |
    | ``log2_age`` | log2(1 + accesses since its last access) / 24 | 0 | 1 |
    | ``log2_frequency`` | log2(1 + accesses since admission) / 16 | 0 | 1 |
    | ``log2_reuse_interval`` | log2(1 + previous reuse interval) / 24 | 0 | 1 |
    | ``has_reuse_interval`` | has a previous reuse interval | 0 | 1 |
    | ``predicted_next_use`` | ±log2(1 + abs(last access + previous interval − now)) / 24 (ahead), 1 if unknown | -1 | 1 |
    | ``dirty`` | dirty (eviction costs a write-back) | 0 | 1 |
    | ``layer_delta`` | (its layer at its last access − incoming access's layer) / (deepest layer so far + 1) | -1 | 1 |
    | ``same_iteration`` | last accessed in the current iteration | 0 | 1 |
    | ``kind_*`` | kind one-hot at its last access (weight, activation, gradient, optimizer, kv, temp, input) | 0 | 1 |
    | ``log2_incoming_size`` | log2(incoming size) / 40 | 0 | 1 |
    | ``free_fraction`` | free bytes / capacity | 0 | 1 |
    | ``incoming_fraction_of_capacity`` | incoming size / capacity | 0 | 1 |
    | ``log2_position`` | log2(1 + accesses so far) / 32 | 0 | 1 |
    | ``log2_position_in_iteration`` | log2(1 + accesses since the current iteration began) / 24 | 0 | 1 |
    | ``incoming_kind_*`` | incoming tensor kind one-hot | 0 | 1 |

    Observation version 2 (``tensorcache/Eviction-v2``, :data:`~envs.gym.features.CANDIDATE_FEATURES_V2` /
    :data:`~envs.gym.features.GLOBAL_FEATURES_V2`) appends, per candidate, what the schedule of the previous
    iteration predicts (:mod:`envs.gym.schedule`) and the phase at its last access, and globally the current phase:

    | feature | observation | min | max |
    |---|---|---|---|
    | ``schedule_log2_distance`` | log2(1 + predicted accesses until its next use) / 24; 1 if predicted dead | 0 | 1 |
    | ``schedule_dead`` | predicted never to be used again | 0 | 1 |
    | ``schedule_next_read`` | its predicted next use is a READ (evicting costs a read-back) | 0 | 1 |
    | ``schedule_choice`` | the candidate the ``schedule`` heuristic evicts | 0 | 1 |
    | ``last_phase_*`` | phase one-hot at its last access (forward, backward, optimizer, prefill, decode) | 0 | 1 |
    | ``phase_*`` | the current access's phase one-hot | 0 | 1 |
    | ``log2_position_in_phase`` | log2(1 + accesses since the current run of this phase began) / 24 | 0 | 1 |
    | ``has_previous_iteration`` | an earlier iteration exists (the schedule has a map) | 0 | 1 |

    ## Rewards
    ``reward="bytes"`` (default): −(bytes moved since the previous decision) / capacity, where bytes moved =
    bytes transferred in + dirty bytes written back. ``reward="hits"``: the number of hits since the previous
    decision. The remaining cost after the last decision is paid on the terminating step.

    ## Starting State
    A trace is chosen (from ``trace``/``trace_path``, or drawn with ``self.np_random`` from ``seeds`` of a
    workload, or from a benchmark-suite split) and replayed from its first access to the first decision. With no
    trace argument at all, the env plays the ``train`` split of the ``tcb-v2`` suite (traces are generated on
    first use and cached under ``$TENSORCACHE_CACHE``).

    ## Episode End
    - Termination: the trace has been replayed to its end.
    - Truncation: ``max_episode_steps`` decisions (set at registration, 100 000). A trace's episode takes 1–100k
      decisions, so SB3 logs ``ep_rew_mean`` late in a short run: ``gymnasium.make(..., max_episode_steps=2000)``
      truncates episodes at 2,000 decisions (Gymnasium's TimeLimit), and the next reset draws a fresh task.

    ## Arguments
    - ``trace`` / ``trace_path``: a :class:`~envs.trace.Trace` or a trace file (npz, oracleGeneral or csv).
    - ``hf_config``, ``hf_task``: a Hugging Face ``config.json`` traced without weights (:mod:`envs.capture.hf`),
      ``"train"`` or ``"infer"``; ``hf_options``: more of :func:`~envs.capture.hf.capture_hf`'s arguments
      (``seq``, ``batch``, ``steps``, ``decode_steps``, ``dtype``, ``layers``, ``attn``).
    - ``workload``, ``preset``, ``seeds``, ``layers``, ``iterations``, ``method``: generate traces from a workload;
      each reset draws one of ``seeds``.
    - ``suite``, ``split``, ``task``: draw traces and capacities from a benchmark suite split (e.g. ``tcb-v2``,
      ``train``), optionally of one task (``"gpt2-serve@0.3"``); the suite's capacities are used.
    - ``capacity``: bytes (int or ``"4GiB"``); a float in (0, 1] or ``"peak:0.5"`` = that fraction of the trace's
      peak live bytes; :class:`envs.sim.Headroom` or ``"headroom:0.3"`` = that fraction of the way from the
      tightest feasible cache to the peak, which is what the suites' task names mean (``gpt2-serve@0.3``); see
      :mod:`envs.sim.capacity`. ``info["capacity_spec"]`` says which was used.
    - ``k``: number of candidates offered (≥ 1). ``reward``: ``"bytes"`` or ``"hits"``.
    - ``mode``: ``"tensor"`` (default) or ``"classic"`` (see :mod:`envs.sim`).
    - ``candidates``: the candidate rule, ``"lru"`` (default), ``"mixed"``, or ``"schedule"`` (the K tensors the
      ``schedule`` heuristic would evict first, in its order: candidate 0 is its choice; v2's default).
    - ``observation_version``: 1 (default) or 2 (the table above; v2's default).
    - ``render_mode``: ``"ansi"`` (text) or ``"rgb_array"`` (a memory map image), or None.
    - ``accelerator``: the accelerator preset of the step time at the end (:mod:`envs.sim.accelerators`).

    ## Info
    Every step: ``bytes_moved``, ``hits``, ``decisions``, ``action_mask`` and ``invalid_action``. At reset and on
    the terminating step also ``misses``, ``bytes_in``, ``bytes_out``, ``trace_hash``, ``capacity_bytes`` and
    ``capacity_spec`` (``"headroom:0.3"``, ``"peak:0.5"`` or the bytes given), and
    at the end ``byte_hit_ratio``, ``hit_ratio``, ``result`` (a :class:`~envs.sim.SimResult`) and the step time
    (:mod:`envs.sim.step_time`; None where the trace records no op costs): ``step_s``, ``compute_s`` and
    ``stall_s`` (seconds per steady-state step on ``accelerator``), ``lru_step_s`` (LRU's, from one LRU run per
    trace) and ``speedup_step_vs_lru``. :meth:`counters` returns the full set at any time.

    ## Version History
    - v2, later: the schedule predictor's version 2 (serving: the layer cycle for weights and KV blocks without a
      reuse interval, routed experts by how often finished decode steps used them) changes ``schedule_distance``
      and ``schedule_next_read``, the ``schedule`` candidates and so v2's serving observations; training traces'
      are unchanged. Policies trained on v2 before it (``bc-v2`` of tcb-v2) were trained again.
    - v2, later: each step is one compiled call, as v1's (the schedule rule and version 2's columns joined the
      fused step); observations, rewards and results unchanged (tested step by step against the unfused path).
    - Both versions, later: ``capacity`` also takes ``"headroom:0.3"`` and ``"peak:0.5"``, and the info names the
      spec (``capacity_spec``); suite tasks resolve their capacity from their headroom (the same bytes).
    - Both versions, later: the terminal info carries the step time (``step_s`` and its companions); observations,
      rewards and results unchanged.
    - v2: observation version 2 (the schedule's predictions and the phases appended to v1's columns, whose offsets
      are unchanged) and the ``schedule`` candidate rule by default; rewards and simulator semantics as v1.
    - v1: past-only observations (the predicted-next-use, layer and position features no longer read the trace
      length, the current iteration's length or a tensor's layer at its last access in the whole trace; see the
      table), values clipped into the declared bounds, no-argument construction (the ``tcb-v2`` train split),
      ``task=``, ``rgb_array`` rendering. v0 is retired: its observations depended on the future. Later changes kept
      the observations, rewards and results: each step became one compiled call (evict, advance, candidates,
      observation; :mod:`envs.gym.step_kernel`), the per-step info carries the five cheap keys above (the full
      counters come at reset, at the end and from :meth:`counters`), and the env moved to
      ``envs.gym.eviction_env`` (the registered id is unchanged).
    - v0: initial version (LRU-ordered candidates, bytes-moved reward); the optional ``candidates="mixed"`` rule
      was added later without changing the default.
    """

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}

    def __init__(
        self,
        trace: Trace | None = None,
        trace_path: str | Path | None = None,
        hf_config: str | Path | None = None,
        hf_task: str = "train",
        hf_options: dict | None = None,
        workload: str | None = None,
        preset: str | None = None,
        seeds: Sequence[int] = (0,),
        layers: int | None = None,
        iterations: int | None = None,
        method: str = "captured",
        suite: str | None = None,
        split: str = DEFAULT_SPLIT,
        task: str | None = None,
        capacity: int | float | str | Headroom = 0.5,
        k: int = 16,
        reward: str = "bytes",
        mode: str = "tensor",
        candidates: str = "lru",
        render_mode: str | None = None,
        observation_version: int = 1,
        accelerator: str = DEFAULT_ACCELERATOR,
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if reward not in REWARD_MODES:
            raise ValueError(f"unknown reward mode {reward!r}; valid: {', '.join(REWARD_MODES)}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if candidates not in EPISODE_RULES:
            raise ValueError(f"unknown candidate rule {candidates!r}; valid: {', '.join(EPISODE_RULES)}")
        if observation_version not in OBSERVATION_VERSIONS:
            valid = ", ".join(map(str, OBSERVATION_VERSIONS))
            raise ValueError(f"unknown observation version {observation_version!r}; valid: {valid}")
        self.observation_version = observation_version
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"unknown render mode {render_mode!r}; valid: {', '.join(RENDER_MODES)}")
        check_capacity_spec(capacity)
        self.step_model = StepModel(accelerator)
        self._lru_stall: dict[str, int] = {}
        self.k, self.reward_mode, self.mode, self.render_mode = int(k), reward, mode, render_mode
        self.candidate_rule = candidates
        if hf_config is not None:
            if any(x is not None for x in (trace, trace_path, workload, suite)):
                raise ValueError("give at most one of trace, trace_path, hf_config, workload (with preset) or suite")
            from envs.capture.hf import capture_hf

            options = dict(hf_options or {})
            allowed = {"seq", "batch", "steps", "decode_steps", "dtype", "layers", "attn"}
            unknown = sorted(set(options) - allowed)
            if unknown:
                raise ValueError(f"unknown hf_options key {unknown[0]!r}; valid: {', '.join(sorted(allowed))}")
            trace = capture_hf(hf_config, task=hf_task, **options)
        if all(x is None for x in (trace, trace_path, workload, suite)):
            suite = DEFAULT_SUITE
        self._sources = trace_sources(
            trace, trace_path, workload, preset, seeds, layers, iterations, method, suite, split, task, capacity
        )
        self._loaded: dict[int, tuple[PreparedTrace, int, FeatureBuilder, str]] = {}
        self._capacity_spec = ""
        if len(self._sources) == 1:
            self._load(0)  # fail at construction on a bad trace or capacity
        self.action_space = spaces.Discrete(self.k)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(observation_size(self.k, observation_version),), dtype=np.float32)
        self.episode: Episode | None = None
        self._moved = self._hits = 0
        self._last_action: int | None = None
        self._obs_size = observation_size(self.k, observation_version)
        self._masks = _prefix_masks(self.k)

    # -- trace loading ------------------------------------------------------------------------------------------
    def _load(self, index: int) -> tuple[PreparedTrace, int, FeatureBuilder, str]:
        if index not in self._loaded:
            trace, capacity = self._sources[index]()
            if not (isinstance(trace, PreparedTrace) and trace.mode == self.mode):
                trace = prepare(trace.trace if isinstance(trace, PreparedTrace) else trace, self.mode)
            feats = FeatureBuilder(trace)
            cap = resolve_capacity(capacity, feats.prepared)
            self._loaded[index] = (feats.prepared, cap, feats, describe_capacity(capacity))
        return self._loaded[index]

    # -- Gymnasium API ------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self._sources))) if len(self._sources) > 1 else 0
        prepared, cap, feats, self._capacity_spec = self._load(index)
        self.episode = Episode(
            prepared,
            cap,
            k=self.k,
            rule=self.candidate_rule,
            seed=int(self.np_random.integers(2**31)),
            features=feats,
            observation_version=self.observation_version,
        )
        self._moved = self._hits = 0
        self._last_action = None
        obs = np.zeros(self._obs_size, dtype=np.float32)
        self.episode.step(None, obs)
        return obs, self._info(invalid=False)

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        episode = self.episode
        if episode is None:
            raise RuntimeError("call reset() before step()")
        invalid = False
        obs = np.zeros(self._obs_size, dtype=np.float32)
        sim = episode.sim
        if not sim.done:
            a = action if type(action) is int else _as_index(action)
            invalid = not episode.step(a, obs)  # evict, advance, candidates and observation in one compiled call
            self._last_action = 0 if invalid else a
        moved, hits = sim.bytes_moved, sim.hits
        if self.reward_mode == "bytes":
            reward = -(moved - self._moved) / sim.capacity
        else:
            reward = float(hits - self._hits)
        self._moved, self._hits = moved, hits
        if sim.done:
            return obs, reward, True, False, self._info(invalid)
        return obs, reward, False, False, self._step_info(moved, hits, invalid)

    def action_masks(self) -> np.ndarray:
        """Valid candidate indices (for sb3-contrib's MaskablePPO)."""
        episode = self.episode
        n = episode.n_candidates if episode is not None and episode.pending else -1
        return self._masks[n].copy()  # -1: a terminal state still needs one legal action for maskable samplers

    @property
    def view(self):
        """The current sealed :class:`~envs.gym.features.DecisionView` (None at the end of the trace)."""
        if self.episode is None or self.episode.done:
            return None
        return self.episode.view

    @property
    def oracle(self):
        """The current episode's :class:`~envs.sim.oracle.Oracle` (for imitation labels; never in an observation)."""
        return None if self.episode is None else self.episode.oracle

    def counters(self) -> dict[str, Any]:
        """The episode's counters so far: what ``info`` holds at reset and on the terminal step."""
        return self._info(invalid=False)

    def _step_info(self, moved: int, hits: int, invalid: bool) -> dict[str, Any]:
        """The info of every step: the cheap keys."""
        return {
            "bytes_moved": moved,
            "hits": hits,
            "decisions": self.episode.n_decisions,
            "action_mask": self.action_masks(),
            "invalid_action": invalid,
        }

    def _info(self, invalid: bool) -> dict[str, Any]:
        """The full info dict (at reset and on the terminal step; other steps carry the cheap part only)."""
        episode = self.episode
        if episode is None:
            raise RuntimeError("call reset() first")
        sim = episode.sim
        hits, b_in, b_out = sim.hits, sim.bytes_in, sim.bytes_out
        info = self._step_info(b_in + b_out, hits, invalid)
        info |= {
            "misses": sim.n_requests - hits,
            "bytes_in": b_in,
            "bytes_out": b_out,
            "trace_hash": episode.prepared.trace.content_hash,
            "capacity_bytes": sim.capacity,
            "capacity_spec": self._capacity_spec,
        }
        if episode.done:
            result = episode.result()
            info["byte_hit_ratio"] = result.byte_hit_ratio
            info["hit_ratio"] = result.hit_ratio
            info["result"] = result
            info |= self._step_time(episode.prepared, result)
        return info

    def _step_time(self, prepared: PreparedTrace, result: Any) -> dict[str, float | None]:
        """The episode's seconds per step and LRU's (one LRU run per trace and capacity, remembered)."""
        mine = step_time(prepared, result.stall_bytes, self.step_model)
        if mine is None:
            return dict.fromkeys(("step_s", "compute_s", "stall_s", "lru_step_s", "speedup_step_vs_lru"))
        key = f"{result.trace_hash}@{result.capacity_bytes}"
        if key not in self._lru_stall:
            self._lru_stall[key] = simulate(prepared, "lru", result.capacity_bytes).stall_bytes
        lru = step_time(prepared, self._lru_stall[key], self.step_model)
        return {"step_s": mine.step_s, "compute_s": mine.compute_s, "stall_s": mine.stall_s, "lru_step_s": lru.step_s,
                "speedup_step_vs_lru": lru.step_s / mine.step_s}  # fmt: skip

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None or self.episode is None:
            return None
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        return self._render_ansi()

    def _resident_by_kind(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-tensor resident flags and kinds (kinds at each tensor's latest access)."""
        episode = self.episode
        state = episode.sim.tensor_state()
        kinds = np.zeros(state.last_access.shape[0], dtype=np.int64)
        seen = state.last_access >= 0
        kinds[seen] = episode.features.access_kind[state.last_access[seen]]
        return state.resident == 1, kinds

    def _render_ansi(self) -> str:
        episode = self.episode
        r = episode.result()
        sizes = episode.prepared.sizes
        res, kinds = self._resident_by_kind()
        used = int(sizes[res].sum())
        cap = r.capacity_bytes
        lines = [f"t={episode.sim.now} used {used / 2**20:.1f}/{cap / 2**20:.1f} MiB ({used / cap:.0%})"]
        occ = [f"{k.name.lower()}={sizes[res & (kinds == k)].sum() / 2**20:.1f}MiB" for k in Kind]
        lines.append("  by kind: " + ", ".join(o for o in occ if not o.endswith("=0.0MiB")))
        v = self.view
        if v is not None:
            lines.append(f"  incoming #{v.incoming} {Kind(v.incoming_kind).name.lower()} {v.incoming_size / 2**20:.2f}MiB")
            for j in range(v.n):
                lines.append(
                    f"  [{j:2d}] #{v.candidates[j]:<6d} {Kind(v.kind[j]).name.lower():<15} "
                    f"{v.size[j] / 2**20:9.2f}MiB age={v.now - v.last_access[j]:<7d} dirty={v.dirty[j]}"
                )
        if self._last_action is not None:
            lines.append(f"  last action: evicted candidate {self._last_action}")
        return "\n".join(lines)

    def _render_rgb(self) -> np.ndarray:
        """A 64 x 256 image of the memory: one column per 1/256 of the capacity, coloured by the resident tensor
        kind filling it (grey = free); the bottom rows mark the candidates' share (red)."""
        episode = self.episode
        sizes = episode.prepared.sizes
        res, kinds = self._resident_by_kind()
        palette = np.array([[31, 119, 180], [255, 127, 14], [44, 160, 44], [214, 39, 40], [148, 103, 189],
                            [140, 86, 75], [227, 119, 194]], dtype=np.uint8)  # fmt: skip
        img = np.full((64, 256, 3), 40, dtype=np.uint8)
        cap = float(episode.capacity)
        col = 0.0
        for k in Kind:
            width = float(sizes[res & (kinds == k)].sum()) / cap * 256
            img[:48, int(col) : int(col + width)] = palette[int(k)]
            col += width
        v = self.view
        if v is not None:
            share = float(v.size.sum()) / cap * 256
            img[52:, : int(share)] = (200, 30, 30)
        return img


def _prefix_masks(k: int) -> tuple[np.ndarray, ...]:
    """Read-only masks (copied before they are handed out): index n in 0..k has the first n of k slots valid; the
    last entry (index k + 1) is the terminal mask, slot 0 only."""
    masks = []
    for n in (*range(k + 1), 1):
        m = np.zeros(k, dtype=bool)
        m[:n] = True
        m.flags.writeable = False
        masks.append(m)
    return tuple(masks)


def _as_index(action: Any) -> int:
    """A scalar integer action as an int; anything else (arrays of several values, None, floats) as -1."""
    if isinstance(action, (int, np.integer)) and not isinstance(action, bool):
        return int(action)
    if isinstance(action, np.ndarray) and action.size == 1 and np.issubdtype(action.dtype, np.integer):
        return int(action.reshape(()))
    return -1
