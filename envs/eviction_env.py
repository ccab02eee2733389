"""The Gymnasium environment ``tensorcache/Eviction-v1``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from envs.episode import Episode
from envs.features import FeatureBuilder, observation_size
from envs.sim import engine as E
from envs.sim.capacity import Headroom, check_capacity_spec, resolve_capacity
from envs.sim.simulator import CANDIDATE_RULES, MODES, PreparedTrace, prepare
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
    ``Box(-1, 1, (K * 17 + 12,), float32)``: K rows of per-candidate features, then global features; empty slots
    are zero. Every value is clipped into its bounds. Nothing depends on anything after the current access: no
    trace length, no iteration length, no future access of any tensor (``tests/test_past_only.py``).

    | index | observation | min | max |
    |---|---|---|---|
    | c*17+0 | candidate slot is valid | 0 | 1 |
    | c*17+1 | log2(size in bytes) / 40 | 0 | 1 |
    | c*17+2 | log2(1 + accesses since its last access) / 24 | 0 | 1 |
    | c*17+3 | log2(1 + accesses since admission) / 16 | 0 | 1 |
    | c*17+4 | log2(1 + previous reuse interval) / 24 | 0 | 1 |
    | c*17+5 | has a previous reuse interval | 0 | 1 |
    | c*17+6 | ±log2(1 + abs(last access + previous interval − now)) / 24 (predicted use ahead), 1 if unknown | -1 | 1 |
    | c*17+7 | dirty (eviction costs a write-back) | 0 | 1 |
    | c*17+8 | (its layer at its last access − incoming access's layer) / (deepest layer so far + 1) | -1 | 1 |
    | c*17+9 | last accessed in the current iteration | 0 | 1 |
    | c*17+10..16 | kind one-hot at its last access (weight, activation, gradient, optimizer, kv, temp, input) | 0 | 1 |
    | K*17+0 | log2(incoming size) / 40 | 0 | 1 |
    | K*17+1 | free bytes / capacity | 0 | 1 |
    | K*17+2 | incoming size / capacity | 0 | 1 |
    | K*17+3 | log2(1 + accesses so far) / 32 | 0 | 1 |
    | K*17+4 | log2(1 + accesses since the current iteration began) / 24 | 0 | 1 |
    | K*17+5..11 | incoming tensor kind one-hot | 0 | 1 |

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
    - Truncation: ``max_episode_steps`` decisions (set at registration, 100 000; ``gymnasium.make`` can change it).

    ## Arguments
    - ``trace`` / ``trace_path``: a :class:`~envs.trace.Trace` or a trace file (npz, oracleGeneral or csv).
    - ``hf_config``, ``hf_task``: a Hugging Face ``config.json`` traced without weights (:mod:`envs.hf_capture`),
      ``"train"`` or ``"infer"``.
    - ``workload``, ``preset``, ``seeds``, ``layers``, ``iterations``, ``method``: generate traces from a workload;
      each reset draws one of ``seeds``.
    - ``suite``, ``split``, ``task``: draw traces and capacities from a benchmark suite split (e.g. ``tcb-v2``,
      ``train``), optionally of one task (``"gpt2-serve@0.3"``); the suite's capacities are used.
    - ``capacity``: bytes (int or ``"4GiB"``), a float in (0, 1] = that fraction of the trace's peak live bytes,
      or :class:`envs.sim.Headroom` (see :mod:`envs.sim.capacity`).
    - ``k``: number of candidates offered (≥ 1). ``reward``: ``"bytes"`` or ``"hits"``.
    - ``mode``: ``"tensor"`` (default) or ``"classic"`` (see :mod:`envs.sim`).
    - ``candidates``: the candidate rule, ``"lru"`` (default) or ``"mixed"``.
    - ``render_mode``: ``"ansi"`` (text) or ``"rgb_array"`` (a memory map image), or None.

    ## Info
    Every step: ``bytes_moved``, ``hits``, ``decisions``, ``action_mask`` and ``invalid_action``. At reset and on
    the terminating step also ``misses``, ``bytes_in``, ``bytes_out``, ``trace_hash`` and ``capacity_bytes``, and
    at the end ``byte_hit_ratio``, ``hit_ratio`` and ``result`` (a :class:`~envs.sim.SimResult`);
    :meth:`counters` returns the full set at any time.

    ## Version History
    - v1 (later, same observations, rewards and results): each step is one compiled call (evict, advance,
      candidates, observation; :mod:`envs.step_kernel`); the per-step info carries the five cheap keys above and the
      full counters come at reset, at the end and from :meth:`counters`.
    - v1: past-only observations (the predicted-next-use, layer and position features no longer read the trace
      length, the current iteration's length or a tensor's layer at its last access in the whole trace; see the
      table), values clipped into the declared bounds, no-argument construction (the ``tcb-v2`` train split),
      ``task=``, ``rgb_array`` rendering. v0 is retired: its observations depended on the future.
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
    ) -> None:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be an integer >= 1, got {k!r}")
        if reward not in REWARD_MODES:
            raise ValueError(f"unknown reward mode {reward!r}; valid: {', '.join(REWARD_MODES)}")
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; valid: {', '.join(MODES)}")
        if candidates not in CANDIDATE_RULES:
            raise ValueError(f"unknown candidate rule {candidates!r}; valid: {', '.join(CANDIDATE_RULES)}")
        if render_mode is not None and render_mode not in RENDER_MODES:
            raise ValueError(f"unknown render mode {render_mode!r}; valid: {', '.join(RENDER_MODES)}")
        check_capacity_spec(capacity)
        self.k, self.reward_mode, self.mode, self.render_mode = int(k), reward, mode, render_mode
        self.candidate_rule = candidates
        if hf_config is not None:
            if any(x is not None for x in (trace, trace_path, workload, suite)):
                raise ValueError("give at most one of trace, trace_path, hf_config, workload (with preset) or suite")
            from envs.hf_capture import capture_hf

            trace = capture_hf(hf_config, task=hf_task)
        if all(x is None for x in (trace, trace_path, workload, suite)):
            suite = DEFAULT_SUITE
        self._sources = _trace_sources(
            trace, trace_path, workload, preset, seeds, layers, iterations, method, suite, split, task, capacity
        )
        self._loaded: dict[int, tuple[PreparedTrace, int, FeatureBuilder]] = {}
        if len(self._sources) == 1:
            self._load(0)  # fail at construction on a bad trace or capacity
        self.action_space = spaces.Discrete(self.k)
        self.observation_space = spaces.Box(-1.0, 1.0, shape=(observation_size(self.k),), dtype=np.float32)
        self.episode: Episode | None = None
        self._moved = self._hits = 0
        self._last_action: int | None = None
        self._obs_size = observation_size(self.k)
        self._masks = _prefix_masks(self.k)

    # -- trace loading ------------------------------------------------------------------------------------------
    def _load(self, index: int) -> tuple[PreparedTrace, int, FeatureBuilder]:
        if index not in self._loaded:
            trace, capacity = self._sources[index]()
            feats = FeatureBuilder(prepare(trace, self.mode))
            self._loaded[index] = (feats.prepared, resolve_capacity(capacity, feats.prepared), feats)
        return self._loaded[index]

    # -- Gymnasium API ------------------------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        index = int(self.np_random.integers(len(self._sources))) if len(self._sources) > 1 else 0
        prepared, cap, feats = self._load(index)
        self.episode = Episode(
            prepared, cap, k=self.k, rule=self.candidate_rule, seed=int(self.np_random.integers(2**31)), features=feats
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
        S = sim.S
        moved, hits = S.item(E.S_BIN) + S.item(E.S_BOUT), S.item(E.S_HITS)
        if self.reward_mode == "bytes":
            reward = -(moved - self._moved) / S.item(E.S_CAP)
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
        """The current sealed :class:`~envs.features.DecisionView` (None at the end of the trace)."""
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
        S = episode.sim.S
        hits, b_in, b_out = S.item(E.S_HITS), S.item(E.S_BIN), S.item(E.S_BOUT)
        info = self._step_info(b_in + b_out, hits, invalid)
        info |= {
            "misses": S.item(E.S_NREQ) - hits,
            "bytes_in": b_in,
            "bytes_out": b_out,
            "trace_hash": episode.prepared.trace.content_hash,
            "capacity_bytes": S.item(E.S_CAP),
        }
        if episode.done:
            result = episode.result()
            info["byte_hit_ratio"] = result.byte_hit_ratio
            info["hit_ratio"] = result.hit_ratio
            info["result"] = result
        return info

    def render(self) -> str | np.ndarray | None:
        if self.render_mode is None or self.episode is None:
            return None
        if self.render_mode == "rgb_array":
            return self._render_rgb()
        return self._render_ansi()

    def _resident_by_kind(self) -> tuple[np.ndarray, np.ndarray]:
        """Per-tensor resident flags and kinds (kinds at each tensor's latest access)."""
        episode = self.episode
        T = episode.sim.T
        kinds = np.zeros(T.shape[0], dtype=np.int64)
        seen = T[:, E.F_LAST] >= 0
        kinds[seen] = episode.features.access_kind[T[seen, E.F_LAST]]
        return T[:, E.F_RES] == 1, kinds

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


def _trace_sources(trace, trace_path, workload, preset, seeds, layers, iterations, method, suite, split, task, capacity):
    """A list of zero-argument loaders, each returning (trace, capacity spec)."""
    given = [x is not None for x in (trace, trace_path, workload, suite)]
    if sum(given) != 1:
        raise ValueError("give at most one of trace, trace_path, workload (with preset) or suite")
    if task is not None and suite is None:
        raise ValueError("task= picks a task of a suite; give suite= too (or no trace argument)")
    if trace is not None:
        if not isinstance(trace, Trace):
            raise ValueError(f"trace must be an envs.Trace, got {type(trace).__name__}")
        return [lambda: (trace, capacity)]
    if trace_path is not None:
        from envs.formats import read_trace

        loaded = read_trace(trace_path)
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
    from envs.benchmarks import get_suite

    instances = get_suite(suite).instances(split, tasks=None if task is None else (task,))
    return [(lambda inst=inst: (inst.trace(), inst.capacity)) for inst in instances]
