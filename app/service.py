"""The Copilot's service: what the HTTP API and the dashboard both call, over the same library functions as the CLIs
and the leaderboard (no second simulator).

A :class:`Copilot` owns bounded caches (traces by scenario hash, results by trace hash + capacity + strategy, the
lower bound) and a small pool for background jobs. Limits keep one request from exhausting the machine.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from envs.sim.accelerators import ACCELERATORS
from envs.sim.bandwidth import LINKS, get_link
from envs.sim.capacity import Headroom, resolve_capacity
from envs.sim.errors import SimError
from envs.sim.policies import CATALOGUE, kind_of
from envs.sim.prepared import PreparedTrace, prepare
from envs.sim.simulator import POLICY_CODES, SimResult
from envs.sim.step_time import DEFAULT_ACCELERATOR, StepModel, compute_floor, step_time, unknown_reason
from envs.trace import Kind, Trace
from envs.trace.record import DEFAULT_ACCESS_LIMIT

MAX_LAYERS = 128
MAX_ITERATIONS = 64
MAX_ACCESSES = DEFAULT_ACCESS_LIMIT
MAX_UPLOAD_BYTES = 64 * 2**20
MAX_TIMELINE_POINTS = 400
#: Background jobs queued or running at once (more: 429), and how long a finished job's result is kept.
MAX_PENDING_JOBS = 8
#: Points of a capacity curve that includes the lower bound (each point solves it).
MAX_BOUND_POINTS = 8
#: Wall-clock budget of one interactive request (jobs have none).
REQUEST_BUDGET_S = 60.0
JOB_TTL_S = 3600.0
#: Strategies that take long enough to be run only as background jobs.
SLOW_STRATEGIES = ("llm",)
#: What the page runs as a background job and fills in when ready: the LP solves (the bound, lp-guided and so
#: best-offline) and the slow strategies; seconds on a large trace, where everything else takes milliseconds.
BACKGROUND_STRATEGIES = ("lp-guided", "best-offline", "lower-bound", *SLOW_STRATEGIES)
#: Catalogue strategies that are no agent of the registry but run here (offline references, the bound).
CATALOGUE_ONLY = tuple(p.name for p in CATALOGUE if not p.agent and "tensor" in p.modes)
OFFLINE = tuple(n for n in CATALOGUE_ONLY if kind_of(n) == "offline")
WORKLOAD_PRESETS = {
    "transformer-train": ("mistral-7b", "gpt2-small"),
    "transformer-infer": ("mistral-7b", "gpt2-small"),
    "moe-infer": ("mixtral-8x7b",),
    "cnn-train": ("resnet50", "resnet101", "resnet152"),
}
WORKLOAD_LABELS = {
    "transformer-train": "transformer training",
    "transformer-infer": "transformer serving",
    "moe-infer": "MoE serving",
    "cnn-train": "CNN training",
}


class CopilotError(ValueError):
    """A request the Copilot refuses (the message is the one-line reason)."""


class BusyError(CopilotError):
    """Too much work is queued: the client should retry later (HTTP 429)."""


class CancelledError(CopilotError):
    """The work was stopped: its client went away, or the server is stopping (HTTP 503 if anyone still listens)."""


@dataclass
class Budget:
    """How long one request may compute, and the signals that stop it early. The service checks it between
    strategies, capacities and bound solves, and trace generation checks it every few hundred ops.

    Attributes:
        seconds: Wall-clock budget (None: none).
        cancel: Set when the client went away.
        stopping: Set when the server shuts down.
        on_progress: Told how far the work is (a fraction, None when unknown) and what it is doing (a background
            job's progress).
    """

    seconds: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    stopping: threading.Event = field(default_factory=threading.Event)
    start: float = field(default_factory=time.monotonic)
    on_progress: Callable[[float | None, str], None] | None = None

    def report(self, fraction: float | None, detail: str) -> None:
        """Passes on how far the work is (see ``on_progress``)."""
        if self.on_progress is not None:
            self.on_progress(fraction, detail)

    def check(self) -> None:
        """Raises :class:`CancelledError` or :class:`CopilotError` (over budget) when the work should stop."""
        if self.stopping.is_set():
            raise CancelledError("the server is stopping")
        if self.cancel.is_set():
            raise CancelledError("the client went away")
        if self.seconds is not None and time.monotonic() - self.start > self.seconds:
            raise CopilotError(f"the request ran past its {self.seconds:g} s budget: ask for fewer strategies, points, "
                               "layers or steps, or start it as a job")  # fmt: skip


class NotFoundError(CopilotError):
    """An unknown trace or job id."""


@dataclass(frozen=True)
class Scenario:
    """A built-in workload at a size (see :func:`envs.workloads.generate_trace`)."""

    workload: str = "transformer-train"
    preset: str = "mistral-7b"
    layers: int | None = 4
    iterations: int | None = 2
    batch: int | None = None
    seed: int = 0
    method: str = "captured"

    def check(self) -> None:
        if self.workload not in WORKLOAD_PRESETS:
            raise CopilotError(f"unknown workload {self.workload!r}; valid: {', '.join(WORKLOAD_PRESETS)}")
        if self.preset not in WORKLOAD_PRESETS[self.workload]:
            valid = ", ".join(WORKLOAD_PRESETS[self.workload])
            raise CopilotError(f"unknown preset {self.preset!r} for {self.workload}; valid: {valid}")
        if self.layers is not None and not 1 <= self.layers <= MAX_LAYERS:
            raise CopilotError(f"layers must be in 1..{MAX_LAYERS}, got {self.layers}")
        if self.iterations is not None and not 1 <= self.iterations <= MAX_ITERATIONS:
            raise CopilotError(f"iterations must be in 1..{MAX_ITERATIONS}, got {self.iterations}")
        if self.batch is not None and not 1 <= self.batch <= 256:
            raise CopilotError(f"batch must be in 1..256, got {self.batch}")
        if not 0 <= self.seed < 2**31:
            raise CopilotError(f"seed must be in 0..2**31-1, got {self.seed}")

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]

    def command(self, out: str = "trace.npz") -> str:
        parts = [f"tensorcache-trace generate --workload {self.workload} --preset {self.preset}"]
        for flag, value in (("layers", self.layers), ("iterations", self.iterations), ("batch", self.batch)):
            if value is not None:
                parts.append(f"--{flag} {value}")
        parts.append(f"--seed {self.seed} --method {self.method} --out {out}")
        return " ".join(parts)


@dataclass(frozen=True)
class Memory:
    """A memory size: exactly one of GiB, bytes, or a headroom fraction in [0, 1]."""

    gib: float | None = None
    bytes: int | None = None
    headroom: float | None = None

    def spec(self):
        given = [x is not None for x in (self.gib, self.bytes, self.headroom)]
        if sum(given) != 1:
            raise CopilotError("give exactly one of gib, bytes or headroom")
        if self.gib is not None:
            if not np.isfinite(self.gib) or self.gib <= 0:
                raise CopilotError(f"memory must be positive, got {self.gib} GiB")
            return max(int(self.gib * 2**30), 1)
        if self.bytes is not None:
            return int(self.bytes)
        return Headroom(float(self.headroom))


@dataclass
class Job:
    id: str
    kind: str
    status: str = "queued"
    progress: float = 0.0
    detail: str = ""
    result: dict | None = None
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)


class _LRU(OrderedDict):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def put(self, key, value) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class Copilot:
    """The service. Thread-safe for the API's worker threads (one lock around the caches)."""

    def __init__(self, max_traces: int = 12, max_results: int = 512, job_workers: int = 1) -> None:
        self._traces: _LRU = _LRU(max_traces)  # key -> (Trace, PreparedTrace, description)
        self._results: _LRU = _LRU(max_results)
        self._bounds: _LRU = _LRU(max_results)
        self._lps: _LRU = _LRU(8)  # (trace hash, capacity) -> (bound bytes, LP residency per access)
        self._estimates: _LRU = _LRU(max_results)  # scenario key -> estimated accesses
        self._runs_done: _LRU = _LRU(max_results)  # (trace hash, capacity, strategy) -> its SimResult
        self._stopping = threading.Event()
        self._runs = ThreadPoolExecutor(max_workers=max(len(os.sched_getaffinity(0)), 1), thread_name_prefix="copilot-run")
        self._lock = threading.RLock()
        self._jobs: dict[str, Job] = {}
        self._pool = ThreadPoolExecutor(max_workers=job_workers, thread_name_prefix="copilot-job")
        # traces get their own worker: a new model is traced at once, not after the previous model's bound solves
        self._tracer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="copilot-trace")
        self._registry = None

    # -- catalogue -------------------------------------------------------------------------------------------------
    def workloads(self) -> list[dict]:
        return [{"name": w, "label": WORKLOAD_LABELS[w], "presets": list(p)} for w, p in WORKLOAD_PRESETS.items()]

    def registry(self):
        if self._registry is None:
            from eval.leaderboard.entries import registry

            self._registry = registry()
        return self._registry

    def strategies(self) -> list[dict]:
        reg = self.registry()
        names = [*reg.names(), *CATALOGUE_ONLY]
        return [{"name": n, "kind": reg.kind(n), "description": describe_strategy(n, reg.kind(n)),
                 "slow": n in SLOW_STRATEGIES, "curve": n not in SLOW_STRATEGIES and n not in OFFLINE,
                 "background": n in BACKGROUND_STRATEGIES}
                for n in names]  # fmt: skip

    def links(self) -> list[dict]:
        return [{"name": k, "gb_per_s": v.gb_per_s} for k, v in LINKS.items()]

    def accelerators(self) -> list[dict]:
        """Accelerator presets of the step time (see :mod:`envs.sim.accelerators`)."""
        return [{"name": a.name, "description": a.description, "peak_tflops": dict(a.peak_tflops),
                 "memory_tb_per_s": a.memory_tb_per_s, "memory_gb": a.memory_gb, "link": a.link}
                for a in ACCELERATORS.values()]  # fmt: skip

    # -- traces ----------------------------------------------------------------------------------------------------
    def add_scenario(self, scenario: Scenario, budget: Budget | None = None) -> str:
        scenario.check()
        budget = budget or self.budget(None)
        key = "s-" + scenario.key()
        with self._lock:
            if key in self._traces:
                self._traces.move_to_end(key)
                return key
        from envs.capture.recorder import AccessLimitError, access_limit
        from envs.workloads import WorkloadError, estimate_accesses, generate_trace

        label = f"{scenario.preset}, {scenario.layers or 'all'} layers, {scenario.iterations or 'default'} steps"
        estimate = None  # small scenarios are not estimated: their progress is a count alone
        try:
            if (scenario.layers or MAX_LAYERS) * (scenario.iterations or MAX_ITERATIONS) > 32:  # large: estimate first
                budget.report(0.0, f"Sizing {label}")
                with self._lock:
                    estimate = self._estimates.get(key)
                if estimate is None:
                    with access_limit(None, budget.check):  # four small traces, also stopped when told to
                        estimate = estimate_accesses(scenario.workload, scenario.preset, layers=scenario.layers,
                                                     iterations=scenario.iterations, seed=scenario.seed,
                                                     method=scenario.method, batch=scenario.batch)  # fmt: skip
                    with self._lock:
                        self._estimates.put(key, estimate)
                if estimate > MAX_ACCESSES:
                    raise CopilotError(f"this scenario would record about {estimate:,} accesses; the limit is "
                                       f"{MAX_ACCESSES:,}: ask for fewer layers or steps")  # fmt: skip
            with access_limit(MAX_ACCESSES, budget.check, _progress(budget, f"Generating {label}", estimate)):
                trace = generate_trace(scenario.workload, scenario.preset, layers=scenario.layers,
                                       iterations=scenario.iterations, seed=scenario.seed, method=scenario.method,
                                       batch=scenario.batch)  # fmt: skip
        except (WorkloadError, AccessLimitError) as exc:
            raise CopilotError(str(exc)) from None
        self._store(key, trace, {"source": "scenario", "scenario": asdict(scenario), "command": scenario.command()})
        return key

    def add_model_config(self, data: bytes, task: str = "train", seq: int = 512, layers: int | None = None,
                         decode_steps: int = 8, budget: Budget | None = None, name: str = "config.json") -> str:  # fmt: skip
        """Traces a Hugging Face ``config.json`` (your own model, no weights) and stores the trace; the access limit
        and the budget bound the work."""
        from envs.capture.hf import HFConfigError, capture_hf, load_config
        from envs.capture.recorder import AccessLimitError, access_limit

        _check_config_size(data)
        if task not in ("train", "infer"):
            raise CopilotError(f"task must be train or infer, got {task!r}")
        budget = budget or self.budget(None)
        key = _config_key(data, task, seq, layers, decode_steps)
        with self._lock:
            if key in self._traces:
                return key
        budget.report(0.0, f"Reading {name}")
        with tempfile.TemporaryDirectory() as d:
            (Path(d) / "config.json").write_bytes(data)
            try:
                blocks = load_config(d, layers).num_hidden_layers
                what = (f"{name}: {'a training step' if task == 'train' else f'serving ({decode_steps} decode steps)'}, "
                        f"sequence {seq}, bfloat16, {blocks} blocks")  # fmt: skip
                expected = None
                if blocks > 4:  # the count grows by the same accesses per block: two small traces tell it
                    budget.report(0.0, f"Sizing {what}")
                    with access_limit(MAX_ACCESSES, budget.check):
                        one, two = (len(capture_hf(d, task=task, seq=seq, layers=n, decode_steps=decode_steps))
                                    for n in (1, 2))  # fmt: skip
                    expected = one + (two - one) * (blocks - 1)
                with access_limit(MAX_ACCESSES, budget.check, _progress(budget, f"Tracing {what}", expected)):
                    trace = capture_hf(d, task=task, seq=seq, layers=layers, decode_steps=decode_steps)
            except (HFConfigError, AccessLimitError) as exc:
                raise CopilotError(str(exc).replace(d, "config.json")) from None
        command = f"tensorcache-trace generate --hf-config {name} --task {task} --seq {seq}"
        command += (f" --layers {layers}" if layers else "") + " --out trace.npz"
        self._store(key, trace, {"source": "hf-config", "task": task, "seq": seq, "layers": trace.meta.get("layers"),
                                 "command": command})  # fmt: skip
        return key

    def model_configs(self) -> list[dict]:
        """The bundled example configs (:data:`envs.capture.hf.EXAMPLE_CONFIGS`): name, source, blocks, dims."""
        from envs.capture.hf import EXAMPLE_CONFIGS

        out = []
        for name, path in EXAMPLE_CONFIGS.items():
            raw = json.loads(path.read_text())
            out.append({"name": name, "source": raw.get("_source", ""), "model_type": raw.get("model_type"),
                        "blocks": raw.get("num_hidden_layers"), "hidden_size": raw.get("hidden_size")})  # fmt: skip
        return out

    def example_config(self, name: str) -> bytes:
        """The bytes of bundled example config ``name``."""
        from envs.capture.hf import EXAMPLE_CONFIGS

        if name not in EXAMPLE_CONFIGS:
            raise NotFoundError(f"unknown example model {name!r}; valid: {', '.join(EXAMPLE_CONFIGS)}")
        return EXAMPLE_CONFIGS[name].read_bytes()

    def add_upload(self, filename: str, data: bytes) -> str:
        from envs.trace import TraceError
        from envs.trace.formats import guess_format, read_trace

        if len(data) > MAX_UPLOAD_BYTES:
            raise CopilotError(f"upload is {len(data)} bytes; the limit is {MAX_UPLOAD_BYTES} bytes")
        suffix = Path(filename or "trace.npz").suffix.lower()
        if suffix == ".json":
            return self.add_model_config(data)
        if suffix not in (".npz", ".csv", ".bin", ".oraclegeneral"):
            raise CopilotError(f"unknown trace file type {suffix!r}; upload .npz, .csv, an oracleGeneral .bin, or a "
                               "Hugging Face config.json")  # fmt: skip
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / f"upload{suffix}"
            path.write_bytes(data)
            try:
                trace = read_trace(path, guess_format(path), max_accesses=MAX_ACCESSES)
            except TraceError as exc:
                raise CopilotError(str(exc).replace(str(path), filename or "upload")) from None
        key = "u-" + trace.content_hash[:16]
        self._store(key, trace, {"source": "upload", "filename": filename})
        return key

    def _store(self, key: str, trace: Trace, description: dict) -> None:
        if len(trace) == 0:
            raise CopilotError("the trace is empty")
        if len(trace) > MAX_ACCESSES:
            raise CopilotError(f"the trace has {len(trace)} accesses; the limit is {MAX_ACCESSES}")
        mode = "classic" if trace.meta.get("source_format") == "oracleGeneral" else "tensor"
        prepared = prepare(trace, mode)
        with self._lock:
            self._traces.put(key, (trace, prepared, {**description, "mode": mode}))

    def _get(self, key: str) -> tuple[Trace, PreparedTrace, dict]:
        with self._lock:
            if key not in self._traces:
                raise NotFoundError(f"unknown trace {key!r} (generate or upload it first)")
            self._traces.move_to_end(key)
            return self._traces[key]

    def describe(self, key: str) -> dict:
        trace, prepared, desc = self._get(key)
        return {
            "trace_id": key,
            "content_hash": trace.content_hash,
            "n_accesses": len(trace),
            "n_tensors": trace.n_tensors,
            "peak_live_bytes": prepared.peak_live_bytes,
            "min_capacity_bytes": prepared.op_bytes_max,
            "bytes_by_kind": trace.bytes_by_kind(),
            **desc,
        }

    def stats(self, key: str) -> dict:
        from envs.trace.stats import trace_stats

        trace, _, _ = self._get(key)
        return asdict(trace_stats(trace))

    # -- simulation ------------------------------------------------------------------------------------------------
    def capacity(self, key: str, memory: Memory) -> int:
        _, prepared, _ = self._get(key)
        try:
            return resolve_capacity(memory.spec(), prepared)
        except SimError as exc:
            raise CopilotError(f"{exc} (feasible: at least {prepared.op_bytes_max / 2**30:.3f} GiB)") from None

    def bound(self, key: str, capacity: int) -> int | None:
        _, prepared, _ = self._get(key)
        if prepared.classic:
            return None
        cache_key = (prepared.trace.content_hash, capacity)
        with self._lock:
            if cache_key in self._bounds:
                return self._bounds[cache_key]
        return self._lp(prepared, capacity)[0]

    def _lp(self, prepared: PreparedTrace, capacity: int) -> tuple[int, np.ndarray]:
        """The lower bound's LP at one capacity, solved once for the bound and lp-guided (and so best-offline):
        the certified bound in bytes and the LP's residency per access."""
        cache_key = (prepared.trace.content_hash, capacity)
        with self._lock:
            if cache_key in self._lps:
                return self._lps[cache_key]
        from envs.sim.lower_bound import lower_bound
        from envs.sim.offline import residency_by_access

        bound, x, intervals = lower_bound(prepared, capacity)
        out = (bound.bytes, residency_by_access(prepared, x, intervals))
        with self._lock:
            self._lps.put(cache_key, out)
            self._bounds.put(cache_key, out[0])
        return out

    def _run(self, key: str, prepared: PreparedTrace, capacity: int, name: str, points: int,
             budget: Budget | None = None) -> dict:  # fmt: skip
        """One strategy's run at one capacity, with a timeline of ``points`` snapshots (0: none). Each run is made
        once: a request without a timeline (exports, capacity curves) reuses any earlier run of the same strategy at
        the same capacity, whatever its timeline."""
        run_key = (prepared.trace.content_hash, capacity, name)
        cache_key = (*run_key, points)
        with self._lock:
            if self._has_run(prepared, capacity, name, points):
                if cache_key in self._results:
                    return self._results[cache_key]
                return {"result": self._runs_done[run_key], "timeline": None}
        if budget is not None:
            budget.check()
        from envs.gym.timeline import record

        timeline = None
        if name in POLICY_CODES and points == 0:
            from envs.sim.simulator import simulate

            result = simulate(prepared, name, capacity)
        elif name in POLICY_CODES:
            result, timeline = record(prepared, capacity, name, points=points)
        elif name in OFFLINE:
            if prepared.classic:
                raise CopilotError(f"{name} needs a tensor-mode trace")
            from envs.sim.offline import OFFLINE_REFERENCES, best_offline, run_offline

            names = (name,) if name != "best-offline" else OFFLINE_REFERENCES
            residency = self._lp(prepared, capacity)[1] if "lp-guided" in names else None
            result = best_offline([run_offline(n, prepared, capacity, residency=residency) for n in names])
        elif name in self.registry():
            policy = self.registry().make(name)
            result, timeline = record(prepared, capacity, choose=policy.choose, k=policy.candidate_k,
                                      rule=policy.candidate_rule, points=max(points, 1),
                                      schedule=policy.uses_schedule, compiled=policy.compiled)  # fmt: skip
            timeline = timeline if points else None
        else:
            raise CopilotError(f"unknown strategy {name!r}; valid: {', '.join(s['name'] for s in self.strategies())}")
        out = {"result": result, "timeline": timeline}
        with self._lock:
            self._results.put(cache_key, out)
            self._runs_done.put(run_key, result)
        return out

    def _has_run(self, prepared: PreparedTrace, capacity: int, name: str, points: int) -> bool:
        """Whether :meth:`_run` would answer from its caches (a run with this timeline, or any run when none is
        asked)."""
        run_key = (prepared.trace.content_hash, capacity, name)
        with self._lock:
            return (*run_key, points) in self._results or (points == 0 and run_key in self._runs_done)

    def simulate(self, key: str, memory: Memory, strategies: list[str], link: str | None = None, points: int = 100,
                 allow_slow: bool = False, accelerator: str = DEFAULT_ACCELERATOR,
                 budget: Budget | None = None) -> dict:  # fmt: skip
        """Metrics, and timelines where available, of every strategy on one trace at one memory size, with each
        one's seconds per step on ``accelerator`` over ``link`` (default: the accelerator's own link)."""
        if not strategies:
            raise CopilotError("choose at least one strategy")
        if len(strategies) > 24 or len(set(strategies)) != len(strategies):
            raise CopilotError("strategies must be distinct and at most 24")
        if not 0 <= points <= MAX_TIMELINE_POINTS:
            raise CopilotError(f"points must be in 0..{MAX_TIMELINE_POINTS} (0: no timelines)")
        try:
            model = StepModel(accelerator, link)
        except ValueError as exc:
            raise CopilotError(str(exc)) from None
        known = {s["name"] for s in self.strategies()}
        for name in strategies:
            if name not in known:
                raise CopilotError(f"unknown strategy {name!r}; valid: {', '.join(sorted(known))}")
        trace, prepared, _ = self._get(key)
        capacity = self.capacity(key, memory)
        for name in strategies:
            # a slow strategy runs as a job; once a job has run it, it answers at once
            if name in SLOW_STRATEGIES and not allow_slow and not self._has_run(prepared, capacity, name, points):
                raise CopilotError(f"{name} takes seconds per trace: start it as a job (POST /jobs)")
        budget = budget or self.budget(None)
        t0 = time.perf_counter()
        want_bound = "lower-bound" in strategies
        bound = self.bound(key, capacity) if want_bound else self._cached_bound(prepared, capacity)
        budget.check()  # a stopping server takes no new work
        names = [n for n in strategies if n != "lower-bound"]
        # independent runs, started together: the engine's loop releases the GIL, so they share the cores; the longest
        # first (offline references, then agents driven outside the engine, then the engine's heap policies), so a
        # long run does not start last and finish alone
        order = sorted(dict.fromkeys(["lru", *names]), key=_expected_cost, reverse=True)
        futures = {n: self._runs.submit(self._run, key, prepared, capacity, n, points, budget) for n in order}
        lru = futures["lru"].result()["result"]
        rows = []
        for name in names:
            run = futures[name].result()
            rows.append(_metrics(name, run["result"], lru, bound, prepared, model, run["timeline"]))
            rows[-1]["kind"] = kind = self.registry().kind(name)
            rows[-1]["description"] = describe_strategy(name, kind)
        if want_bound and bound is not None:
            rows.append(_bound_row(bound, lru, prepared, model))
        rows.sort(key=lambda r: r["bytes_moved"])
        # the recommendation is a policy one can deploy (it reads only the past); an oracle that does better is named
        # beside it as a ceiling, never recommended
        legal = [r["strategy"] for r in rows if r.get("kind") in ("heuristic", "learned")]
        runs = [r["strategy"] for r in rows if r["strategy"] != "lower-bound"]
        best = legal[0] if legal else (runs[0] if runs else None)
        ceiling = next((r["strategy"] for r in rows if r.get("kind") == "offline"), None)
        return {
            "trace_id": key,
            "trace_hash": trace.content_hash,
            "capacity_bytes": capacity,
            "capacity_gib": capacity / 2**30,
            "min_capacity_bytes": prepared.op_bytes_max,
            "peak_live_bytes": prepared.peak_live_bytes,
            "lower_bound_bytes": bound,
            "link": model.link_name,
            "accelerator": accelerator,
            "best": best,
            "best_offline": ceiling if ceiling is not None and runs.index(ceiling) < runs.index(best) else None,
            "step_time": _step_summary(rows, lru, prepared, model),
            "strategies": rows,
            "kinds": [k.name.lower() for k in Kind],
            "seconds": time.perf_counter() - t0,
            "command": self.command(key, capacity, strategies, model),
        }

    def _cached_bound(self, prepared: PreparedTrace, capacity: int) -> int | None:
        with self._lock:
            return self._bounds.get((prepared.trace.content_hash, capacity))

    def capacity_curve(self, key: str, strategies: list[str], points: int = 8, include_bound: bool = True,
                       budget: Budget | None = None) -> dict:  # fmt: skip
        """Bytes moved per byte requested (read-ins plus write-backs, so the bound is comparable) against memory size
        (headroom 0..1) for each strategy, and the lower bound."""
        if not 2 <= points <= 24:
            raise CopilotError("points must be in 2..24")
        for name in strategies:
            if name in SLOW_STRATEGIES or name in OFFLINE:
                raise CopilotError(f"{name} is too slow for a capacity curve (it runs once per point): "
                                   "simulate it at one memory size, as a job for the slow ones")  # fmt: skip
        if "lower-bound" in strategies and points > MAX_BOUND_POINTS:
            raise CopilotError(f"a curve with the lower bound has at most {MAX_BOUND_POINTS} points (one solve each)")
        _, prepared, _ = self._get(key)
        budget = budget or self.budget(None)
        fractions = np.linspace(0.0, 1.0, points)
        curves: dict[str, list[float]] = {s: [] for s in strategies if s != "lower-bound"}
        bound_curve: list[float | None] = []
        caps = []
        for f in fractions:
            cap = self.capacity(key, Memory(headroom=float(f)))
            caps.append(cap)
            for name in curves:
                budget.check()
                r = self._run(key, prepared, cap, name, 0)["result"]
                curves[name].append(r.bytes_moved / r.n_req_bytes if r.n_req_bytes else 0.0)
            if include_bound and "lower-bound" in strategies and not prepared.classic:
                budget.check()
                b = self.bound(key, cap)
                n_req_bytes = self._run(key, prepared, cap, "lru", 0)["result"].n_req_bytes
                bound_curve.append(b / n_req_bytes if n_req_bytes else 0.0)
        out = {"headroom": fractions.tolist(), "capacity_bytes": caps, "moved_per_requested_byte": curves}
        if bound_curve:
            out["moved_per_requested_byte"]["lower-bound"] = bound_curve
        return out

    def command(self, key: str, capacity: int, strategies: list[str], model: StepModel) -> str:
        _, _, desc = self._get(key)
        first = desc.get("command", f"# the uploaded trace {desc.get('filename', 'trace')} saved as trace.npz")
        engine = [s for s in strategies if s in POLICY_CODES]
        others = [s for s in strategies if s not in POLICY_CODES and s != "lower-bound"]
        sim = (f"tensorcache-simulate --trace trace.npz --capacity {capacity} --accelerator {model.accelerator} "
               f"--link {model.link_name}")  # fmt: skip
        lines = [first]
        if engine:
            lines.append(f"{sim} --policy {' '.join(engine)} --json")
        if others or "lower-bound" in strategies:  # learned agents and offline references; the bound comes with them
            lines.append(f"tensorcache-leaderboard score trace.npz --agents {','.join(others or ['lru'])} "
                         f"--capacity {capacity} --json")  # fmt: skip
        return "\n".join(lines)

    # -- jobs ------------------------------------------------------------------------------------------------------
    def submit(self, key: str, memory: Memory, strategies: list[str], link: str | None = None,
               accelerator: str = DEFAULT_ACCELERATOR) -> str:  # fmt: skip
        """Starts :meth:`simulate` (slow strategies allowed) as a background job; returns its id."""
        self._get(key)
        return self._start_job("simulate", lambda b: self.simulate(key, memory, strategies, link, allow_slow=True,
                                                                   accelerator=accelerator, budget=b))  # fmt: skip

    def submit_scenario(self, scenario: Scenario) -> str:
        """Starts generating a scenario's trace as a background job (its progress: accesses so far of the expected);
        the job's result is the trace's description. A cached trace gives a finished job at once."""
        scenario.check()
        return self._start_job("trace", lambda b: self.describe(self.add_scenario(scenario, b)),
                               known="s-" + scenario.key(), pool=self._tracer)  # fmt: skip

    def submit_model_config(self, data: bytes, task: str = "train", seq: int = 512, layers: int | None = None,
                            decode_steps: int = 8, name: str = "config.json") -> str:  # fmt: skip
        """Starts tracing a Hugging Face ``config.json`` as a background job (see :meth:`add_model_config`)."""
        _check_config_size(data)  # refused before a job is queued
        return self._start_job("trace", lambda b: self.describe(self.add_model_config(data, task, seq, layers,
                                                                                      decode_steps, b, name)),
                               known=_config_key(data, task, seq, layers, decode_steps), pool=self._tracer)  # fmt: skip

    def submit_curve(self, key: str, strategies: list[str], points: int = 8) -> str:
        """Starts :meth:`capacity_curve` as a background job (its bound solves take seconds on a large trace)."""
        self._get(key)
        return self._start_job("curve", lambda b: self.capacity_curve(key, strategies, points, budget=b))

    def _start_job(self, kind: str, compute: Callable[[Budget], dict], known: str | None = None,
                   pool: ThreadPoolExecutor | None = None) -> str:  # fmt: skip
        """Queues ``compute`` on ``pool`` (default: the analysis jobs' pool) as a job; when trace ``known`` is
        cached already, the job is its description, finished at once."""
        job = Job(uuid.uuid4().hex[:12], kind)
        if known is not None:
            with self._lock:
                cached = known in self._traces
            if cached:
                job.result, job.status, job.progress, job.finished = self.describe(known), "done", 1.0, time.time()
                with self._lock:
                    self._jobs[job.id] = job
                return job.id
        with self._lock:
            now = time.time()
            for old in [j for j in self._jobs.values() if j.finished is not None and now - j.finished > JOB_TTL_S]:
                del self._jobs[old.id]  # a job's id stays valid until its result expires, never before
            pending = sum(j.finished is None and not j.cancel.is_set() for j in self._jobs.values())
            if pending >= MAX_PENDING_JOBS:
                raise BusyError(f"{pending} jobs are queued or running (the limit is {MAX_PENDING_JOBS}); retry later")
            self._jobs[job.id] = job

        def work() -> None:
            if job.cancel.is_set():  # cancelled while queued: never started
                job.status, job.finished = "cancelled", time.time()
                return
            job.status = "running"

            def progress(fraction: float | None, detail: str) -> None:
                job.detail = detail
                if fraction is not None:
                    job.progress = min(max(fraction, job.progress), 0.99)  # never backwards; done is 1

            try:
                job.result = compute(Budget(None, cancel=job.cancel, stopping=self._stopping, on_progress=progress))
                job.status, job.progress = "done", 1.0
            except CancelledError:
                job.status = "cancelled"
            except Exception as exc:  # reported to the client as the job's error
                job.status, job.error = "failed", str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            finally:
                job.finished = time.time()

        fut: Future = (pool or self._pool).submit(work)
        del fut
        return job.id

    def cancel(self, job_id: str) -> Job:
        """Stops a job: a queued one never starts, a running one ends at its next check (its id stays valid)."""
        job = self.job(job_id)
        job.cancel.set()
        if job.status == "queued":
            job.status, job.finished = "cancelled", time.time()  # no longer holds a place in the queue
        return job

    def job(self, job_id: str) -> Job:
        with self._lock:
            if job_id not in self._jobs:
                raise NotFoundError(f"unknown job {job_id!r}")
            return self._jobs[job_id]

    def budget(self, seconds: float | None = REQUEST_BUDGET_S) -> Budget:
        """A fresh budget for one request, stopped with the server."""
        return Budget(seconds, stopping=self._stopping)

    def stop(self) -> None:
        """Running requests and jobs end at their next check (the server is going down)."""
        self._stopping.set()

    def close(self) -> None:
        """Stops: running requests and jobs end at their next check, queued jobs are dropped."""
        self.stop()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._tracer.shutdown(wait=False, cancel_futures=True)
        self._runs.shutdown(wait=False, cancel_futures=True)


def _check_config_size(data: bytes) -> None:
    """Refuses a config.json over 1 MiB (a real one is a few KiB)."""
    if len(data) > 1 << 20:
        raise CopilotError(f"config.json is {len(data)} bytes; the limit is {1 << 20} bytes")


def _config_key(data: bytes, task: str, seq: int, layers: int | None, decode_steps: int) -> str:
    """The trace key of a Hugging Face config traced with these options."""
    return "c-" + hashlib.sha256(data + json.dumps([task, seq, layers, decode_steps]).encode()).hexdigest()[:16]


def _progress(budget: Budget, what: str, expected: int | None) -> Callable[[int], None]:
    """A recording's progress callback (accesses so far) that reports to ``budget`` as a fraction of ``expected``
    (None: unknown) with a line of what is recorded."""

    def report(count: int) -> None:
        about = f" of about {expected:,}" if expected else ""
        budget.report(count / expected if expected else None, f"{what}: {count:,}{about} accesses")

    return report


def _expected_cost(name: str) -> int:
    """A rough rank of a strategy's run time on one trace (higher: longer), to start the long runs first."""
    if name in OFFLINE:
        return 3
    if name not in POLICY_CODES:
        return 2  # an agent driven outside the engine (schedule, learned entries)
    return 1 if name in {p.name for p in CATALOGUE if p.heap} else 0


def describe_strategy(name: str, kind: str) -> str:
    """One line on what a strategy is: the catalogue's description, or what a learned entry is."""
    entry = next((p for p in CATALOGUE if p.name == name), None)
    if entry is not None:
        return entry.description
    return {"learned": "a learned policy (leaderboard entry; legal: it sees the past only)"}.get(kind, kind)


def _metrics(name: str, r: SimResult, lru: SimResult, bound: int | None, prepared: PreparedTrace, model: StepModel,
             timeline) -> dict:  # fmt: skip
    from envs.benchmarks.score import normalized

    mine, base = step_time(prepared, r.stall_bytes, model), step_time(prepared, lru.stall_bytes, model)
    out = {
        "strategy": name,
        "hit_ratio": r.hit_ratio,
        "byte_hit_ratio": r.byte_hit_ratio,
        "bytes_in": r.bytes_in,
        "bytes_out": r.bytes_out,
        "bytes_moved": r.bytes_moved,
        "transfer_s": get_link(model.link_name).seconds(r.bytes_moved),  # all bytes at the link's peak, as in rows
        "bytes_ratio_vs_lru": lru.bytes_moved / r.bytes_moved if r.bytes_moved else None,
        "step_s": mine.step_s if mine else None,
        "compute_s": mine.compute_s if mine else None,
        "stall_s": mine.stall_s if mine else None,
        "speedup_step_vs_lru": base.step_s / mine.step_s if mine and base else None,
        "score_vs_bound": normalized(r.bytes_moved, lru.bytes_moved, bound, True) if bound is not None else None,
        "evictions": r.n_evictions,
    }
    if timeline is not None:
        out["timeline"] = {
            "position": timeline.position.tolist(),
            "resident_by_kind": timeline.resident_by_kind.T.tolist(),
            "layer_residency": np.round(timeline.layer_residency, 4).tolist(),
            "hits": timeline.hits.tolist(),
            "misses": timeline.misses.tolist(),
            "bytes_moved": timeline.bytes_moved.tolist(),
        }
    for key in ("score_vs_bound", "bytes_ratio_vs_lru"):
        if out[key] is not None and not np.isfinite(out[key]):
            out[key] = None
    return out


def _bound_row(bound: int, lru: SimResult, prepared: PreparedTrace, model: StepModel) -> dict:
    floor, base = compute_floor(prepared, model), step_time(prepared, lru.stall_bytes, model)
    return {
        "strategy": "lower-bound",
        "hit_ratio": None,
        "byte_hit_ratio": None,
        "bytes_in": None,
        "bytes_out": None,
        "bytes_moved": bound,
        "transfer_s": get_link(model.link_name).seconds(bound),
        "bytes_ratio_vs_lru": lru.bytes_moved / bound if bound else None,
        "step_s": floor.step_s if floor else None,  # compute alone: no policy's step is shorter
        "compute_s": floor.compute_s if floor else None,
        "stall_s": 0.0 if floor else None,
        "speedup_step_vs_lru": base.step_s / floor.step_s if floor and base else None,
        "score_vs_bound": 1.0,
        "evictions": None,
        "kind": "bound",
    }


def _step_summary(rows: list[dict], lru: SimResult, prepared: PreparedTrace, model: StepModel) -> dict:
    """LRU's seconds per step, the fastest legal strategy's (heuristic or learned: no oracle is recommended), and
    the compute floor; ``unknown`` says why there are none."""
    base = step_time(prepared, lru.stall_bytes, model)
    floor = compute_floor(prepared, model)
    legal = [r for r in rows if r.get("kind") in ("heuristic", "learned") and r["step_s"] is not None]
    best = min(legal, key=lambda r: r["step_s"]) if legal else None
    return {
        "device": model.name,
        "unknown": unknown_reason(prepared),
        "lru_step_s": base.step_s if base else None,
        "compute_floor_s": floor.step_s if floor else None,
        "best_legal": None
        if best is None or base is None
        else {"strategy": best["strategy"], "step_s": best["step_s"], "speedup_vs_lru": base.step_s / best["step_s"]},
    }


def job_dict(job: Job) -> dict[str, Any]:
    return {"id": job.id, "kind": job.kind, "status": job.status, "progress": job.progress, "detail": job.detail,
            "result": job.result, "error": job.error}  # fmt: skip
