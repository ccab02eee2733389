"""Named, versioned benchmark suites. ``tcb-v1`` (TensorCache Benchmark v1) is the reference suite.

A task is a (trace family, capacity) pair; each family has fixed train / validation / test seeds. **The test
seeds are held out**: training scripts must only use ``train`` (and ``validation`` for model selection).
Capacities are *headroom fractions*: ``0`` is the tightest feasible cache (the largest op's operands), ``1``
holds the peak live bytes (see :func:`envs.sim.simulator.headroom_capacity`), so every task is feasible and the
grid spans tight to roomy. Traces are generated deterministically and cached on disk by spec and generator version;
every result records the trace's content hash.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from envs.eviction_env import ENV_VERSION
from envs.sim.simulator import PreparedTrace, SimResult, headroom_capacity, prepare, simulate
from envs.trace import Trace
from envs.workloads import GENERATOR_VERSION, generate_trace

DEFAULT_CACHE = Path("artifacts/traces")


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

    def instances(self, split: str, cache_dir: Path = DEFAULT_CACHE) -> list[Instance]:
        """Every (task, seed) of ``split``."""
        if split not in self.seeds:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(self.seeds)}")
        return [
            Instance(self, f, h, s, split, cache_dir) for f in self.families for s in self.seeds[split] for h in self.headrooms
        ]

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

    def trace(self) -> Trace:
        """The trace (generated once, then read from the on-disk cache)."""
        if self.path.is_file():
            return Trace.load(self.path)
        f = self.family
        trace = generate_trace(
            f.workload, f.preset, layers=f.layers, iterations=f.iterations, seed=self.seed, method=f.method, batch=f.batch
        )
        trace.save(self.path)
        return trace

    @cached_property
    def prepared(self) -> PreparedTrace:
        return prepare(self.trace(), self.suite.mode)

    @property
    def capacity(self) -> int:
        return headroom_capacity(self.prepared, self.headroom)

    @cached_property
    def references(self) -> tuple[SimResult, SimResult]:
        """The LRU and Belady runs that anchor this instance's normalized scores (computed once)."""
        return simulate(self.prepared, "lru", self.capacity), simulate(self.prepared, "belady", self.capacity)

    def normalized_byte_score(self, bytes_moved: int) -> float:
        """(LRU bytes − ``bytes_moved``) / (LRU bytes − Belady bytes); see :mod:`eval.metrics`."""
        from eval.metrics import normalized

        lru, belady = self.references
        return normalized(bytes_moved, lru.bytes_moved, belady.bytes_moved, True)


TCB_V1 = Suite(
    name="tcb-v1",
    version="1.1",
    families=(
        Family("gpt2-serve", "transformer-infer", "gpt2-small", layers=6, iterations=6),
        Family("mistral-train", "transformer-train", "mistral-7b", layers=6, iterations=2),
        Family("mistral-serve", "transformer-infer", "mistral-7b", layers=6, iterations=6),
        Family("mixtral-serve", "moe-infer", "mixtral-8x7b", layers=4, iterations=6),
        Family("resnet50-train", "cnn-train", "resnet50", layers=None, iterations=3, batch=8),
    ),
    headrooms=(0.1, 0.3, 0.6),
    seeds={"train": tuple(range(0, 8)), "validation": (100, 101), "test": (1000, 1001, 1002)},
)

SUITES = {TCB_V1.name: TCB_V1}


def get_suite(name: str) -> Suite:
    """The suite called ``name`` (ValueError listing the valid ones otherwise)."""
    try:
        return SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; valid: {', '.join(SUITES)}") from None
