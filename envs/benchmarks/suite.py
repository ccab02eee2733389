"""Benchmark suites: families of traces, capacities, and train / validation / test splits.

A task is a (trace family, capacity) pair; each family has fixed train / validation / test seeds. **The test
seeds are held out**: training scripts must only use ``train`` (and ``validation`` for model selection).
Capacities are *headroom fractions*: ``0`` is the tightest feasible cache (the largest op's operands), ``1``
holds the peak live bytes (see :func:`envs.sim.simulator.headroom_capacity`), so every task is feasible and the
grid spans tight to roomy. Traces are generated deterministically and cached (see :mod:`envs.benchmarks.cache`) by
spec and generator version; a cached file is used only when it loads with a valid content hash *and* was made from
this instance's spec, otherwise it is regenerated (so a truncated or swapped file is caught). Every result records
the trace's content hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from envs.benchmarks.cache import default_cache_dir
from envs.benchmarks.score import normalized
from envs.sim.capacity import headroom_capacity
from envs.sim.simulator import PreparedTrace, SimResult, prepare, simulate
from envs.trace import Trace, TraceError
from envs.version import ENV_VERSION
from envs.workloads.spec import GENERATOR_VERSION


@dataclass(frozen=True)
class Family:
    """A trace family of a suite: a workload preset at a fixed depth and length."""

    name: str
    workload: str
    preset: str
    layers: int | None
    iterations: int | None
    method: str = "captured"
    batch: int | None = None


@dataclass(frozen=True)
class Suite:
    """A benchmark suite definition."""

    name: str
    version: str
    families: tuple[Family, ...]
    headrooms: tuple[float, ...]
    seeds: dict[str, tuple[int, ...]]
    mode: str = "tensor"
    link: str = "pcie4-x16"

    def tasks(self) -> list[str]:
        return [f"{f.name}@{h:g}" for f in self.families for h in self.headrooms]

    def instances(self, split: str, cache_dir: Path | None = None, tasks: tuple[str, ...] | None = None) -> list[Instance]:
        """Every (task, seed) of ``split`` (only ``tasks`` when given).

        Raises:
            ValueError: On an unknown split or task.
        """
        if split not in self.seeds:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(self.seeds)}")
        if tasks is not None:
            unknown = [t for t in tasks if t not in self.tasks()]
            if unknown:
                raise ValueError(f"unknown task {unknown[0]!r} of {self.name}; valid: {', '.join(self.tasks())}")
        cache = cache_dir if cache_dir is not None else default_cache_dir()
        out = [Instance(self, f, h, s, split, cache) for f in self.families for s in self.seeds[split] for h in self.headrooms]
        return out if tasks is None else [i for i in out if i.task in tasks]

    def describe(self) -> dict:
        return {
            "suite": self.name,
            "version": self.version,
            "env_version": ENV_VERSION,
            "generator_version": GENERATOR_VERSION,
            "mode": self.mode,
            "link": self.link,
            "headrooms": list(self.headrooms),
            "seeds": {k: list(v) for k, v in self.seeds.items()},
            "held_out_splits": ["test"],
            "families": [f.__dict__ for f in self.families],
        }


@dataclass(frozen=True)
class Instance:
    """One trace of one task: a family at a seed and a headroom fraction."""

    suite: Suite
    family: Family
    headroom: float
    seed: int
    split: str
    cache_dir: Path

    @property
    def task(self) -> str:
        return f"{self.family.name}@{self.headroom:g}"

    @property
    def path(self) -> Path:
        f = self.family
        batch = "" if f.batch is None else f"_b{f.batch}"
        name = f"{f.workload}_{f.preset}_L{f.layers}_it{f.iterations}{batch}_{f.method}_s{self.seed}_g{GENERATOR_VERSION}.npz"
        return self.cache_dir / name

    @property
    def spec(self) -> dict:
        """The generator arguments of this instance's trace (what the cached file's metadata must record)."""
        f = self.family
        return {"workload": f.workload, "preset": f.preset, "layers": f.layers, "iterations": f.iterations,
                "seed": self.seed, "method": f.method, "batch": f.batch}  # fmt: skip

    def trace(self) -> Trace:
        """The trace: read from the cache when the file is intact and made from this spec, else generated and
        cached (atomically)."""
        if self.path.is_file():
            try:
                cached = Trace.load(self.path)
            except TraceError:
                cached = None
            if cached is not None and cached.meta.get("spec") == self.spec and (
                cached.meta.get("generator_version") == GENERATOR_VERSION
            ):
                return cached
        from envs.workloads import generate_trace

        trace = generate_trace(**self.spec)
        trace.save(self.path)
        return trace

    @cached_property
    def prepared(self) -> PreparedTrace:
        return prepare(self.trace(), self.suite.mode)

    @cached_property
    def capacity(self) -> int:
        return headroom_capacity(self.prepared, self.headroom)

    @cached_property
    def references(self) -> tuple[SimResult, SimResult]:
        """The LRU and Belady runs that anchor this instance's normalized scores (computed once)."""
        return simulate(self.prepared, "lru", self.capacity), simulate(self.prepared, "belady", self.capacity)

    def normalized_byte_score(self, bytes_moved: int) -> float:
        """(LRU bytes − ``bytes_moved``) / (LRU bytes − Belady bytes)."""
        lru, belady = self.references
        return normalized(bytes_moved, lru.bytes_moved, belady.bytes_moved, True)
