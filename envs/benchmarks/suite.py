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

import zipfile
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from envs.benchmarks.cache import default_cache_dir
from envs.benchmarks.references import References, cached_references, compute_references
from envs.sim.capacity import headroom_capacity
from envs.sim.lower_bound import BOUND_VERSION
from envs.sim.prepared import PreparedTrace, prepare
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


#: Families traced from a bundled Hugging Face config (the family's preset names it): workload -> task.
HF_WORKLOADS = {"hf-train": "train", "hf-infer": "infer"}
#: What a score of 1 means: the certified lower bound (tcb-v2) or Belady's bytes (tcb-v1).
ANCHORS = ("lower-bound", "belady")
#: Splits whose seeds training must never read.
HELD_OUT_SPLITS = ("test", "test-ood")


@dataclass(frozen=True)
class Suite:
    """A benchmark suite definition.

    Attributes:
        families, headrooms: The in-distribution tasks (every family at every headroom), for every split in
            ``seeds`` except ``test-ood``.
        ood_families, ood_headrooms: The tasks of the ``test-ood`` split (architectures or regimes never seen in
            the other splits), with seeds ``seeds["test-ood"]``.
        anchor: What scores 1 (:data:`ANCHORS`).
        link: Host link of the bytes-only ``transfer_s`` column.
        device: Accelerator preset of the step-time columns (:mod:`envs.sim.step_time`; its own host link).
        min_lru_gap: An instance is scored only if LRU moves at least this fraction more bytes than the anchor (the
            ``admitted`` column of :mod:`eval.rows`; others are left out of aggregates and listed), so no score
            divides by noise.
    """

    name: str
    version: str
    families: tuple[Family, ...]
    headrooms: tuple[float, ...]
    seeds: dict[str, tuple[int, ...]]
    mode: str = "tensor"
    link: str = "pcie4-x16"
    device: str = "a100-80gb"
    anchor: str = "belady"
    ood_families: tuple[Family, ...] = ()
    ood_headrooms: tuple[float, ...] = ()
    min_lru_gap: float = 0.0

    def __post_init__(self) -> None:
        if self.anchor not in ANCHORS:
            raise ValueError(f"unknown anchor {self.anchor!r}; valid: {', '.join(ANCHORS)}")

    @property
    def bound_anchored(self) -> bool:
        """Whether scores are anchored on the lower bound (so references include the bound and offline runs)."""
        return self.anchor == "lower-bound"

    def _grid(self, split: str) -> tuple[tuple[Family, ...], tuple[float, ...]]:
        return (self.ood_families, self.ood_headrooms) if split == "test-ood" else (self.families, self.headrooms)

    def tasks(self, split: str | None = None) -> list[str]:
        """Task names (``family@headroom``) of ``split`` (default: the in-distribution tasks)."""
        fams, heads = self._grid(split or "test")
        return [f"{f.name}@{h:g}" for f in fams for h in heads]

    def instances(self, split: str, cache_dir: Path | None = None, tasks: tuple[str, ...] | None = None) -> list[Instance]:
        """Every (task, seed) of ``split`` (only ``tasks`` when given).

        Raises:
            ValueError: On an unknown split or task.
        """
        if split not in self.seeds:
            raise ValueError(f"unknown split {split!r}; valid: {', '.join(self.seeds)}")
        if tasks is not None:
            unknown = [t for t in tasks if t not in self.tasks(split)]
            if unknown:
                raise ValueError(f"unknown task {unknown[0]!r} of {self.name}/{split}; valid: {', '.join(self.tasks(split))}")
        cache = cache_dir if cache_dir is not None else default_cache_dir()
        fams, heads = self._grid(split)
        out = [Instance(self, f, h, s, split, cache) for f in fams for s in self.seeds[split] for h in heads]
        return out if tasks is None else [i for i in out if i.task in tasks]

    def describe(self) -> dict:
        return {
            "suite": self.name,
            "version": self.version,
            "env_version": ENV_VERSION,
            "generator_version": GENERATOR_VERSION,
            "mode": self.mode,
            "link": self.link,
            "device": self.device,
            "headrooms": list(self.headrooms),
            "seeds": {k: list(v) for k, v in self.seeds.items()},
            "held_out_splits": [s for s in HELD_OUT_SPLITS if s in self.seeds],
            "families": [f.__dict__ for f in self.families],
            "ood_families": [f.__dict__ for f in self.ood_families],
            "ood_headrooms": list(self.ood_headrooms),
            "anchor": self.anchor,
            "min_lru_gap": self.min_lru_gap,
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
        """The trace: read from the cache when the file is intact, made from this spec and carries op costs, else
        generated and cached (atomically)."""
        if self.path.is_file():
            try:
                cached = Trace.load(self.path)
            except TraceError:
                cached = None
            if (
                cached is not None
                and cached.meta.get("spec") == self.spec
                and (cached.meta.get("generator_version") == GENERATOR_VERSION)
                and cached.has_costs  # files from before op costs are generated again (same content hash)
            ):
                return cached
        from envs.io.progress import log_progress

        log_progress(f"generating the trace of {self.task} seed {self.seed} (first use; cached in {self.cache_dir})")
        if self.family.workload in HF_WORKLOADS:
            trace = self._hf_trace()
        else:
            from envs.workloads import generate_trace

            trace = generate_trace(**self.spec)
        trace.save(self.path)
        return trace

    def _hf_trace(self) -> Trace:
        """A Hugging Face-config family's trace, through the project's ``--hf-config`` path (the preset names a
        bundled example config): training steps or prefill + decode steps, the sequence length set by the seed
        (every seed its own length, so no two seeds give one trace)."""
        from envs.trace import COLUMNS, COST_COLUMNS
        from envs.workloads.hf_family import example_trace

        f = self.family
        task = HF_WORKLOADS[f.workload]
        seq = (384 if task == "train" else 192) + 64 * (self.seed % 8)
        steps = f.iterations or 3
        trace = example_trace(f.preset, task, layers=f.layers, seq=seq, batch=f.batch or 1, steps=steps)
        arrays = {c: getattr(trace, c) for c in (*COLUMNS, *(COST_COLUMNS if trace.has_costs else ()))}
        return Trace.from_arrays(arrays, {**trace.meta, "spec": self.spec, "generator_version": GENERATOR_VERSION, "seq": seq})

    @cached_property
    def prepared(self) -> PreparedTrace:
        return prepare(self.trace(), self.suite.mode)

    @cached_property
    def capacity(self) -> int:
        return headroom_capacity(self.prepared, self.headroom)

    @cached_property
    def references(self) -> References:
        """LRU, the offline references and (anchor ``lower-bound``) the lower bound, computed once and cached
        beside the trace."""
        with_bound = self.suite.bound_anchored
        cache = self.path.with_name(f"{self.path.stem}.refs-c{self.capacity}-b{BOUND_VERSION}.json")
        return cached_references(self.prepared, self.capacity, with_bound, cache)

    def lp_residency(self) -> np.ndarray:
        """The lower-bound LP's residency value per access at this capacity (what ``lp-guided`` plays; a teacher
        for imitation), solved once and cached beside the trace. The cache records the trace's hash, the capacity
        and the bound version; anything else, or a damaged file, is solved again."""
        from envs.io.atomic import atomic_path
        from envs.sim.offline import lp_residency

        cache = self.path.with_name(f"{self.path.stem}.residency-c{self.capacity}-b{BOUND_VERSION}.npz")
        key = np.array([self.prepared.trace.content_hash, str(self.capacity), str(BOUND_VERSION)])
        n = self.prepared.tid.shape[0]
        if cache.is_file():
            try:
                with np.load(cache, allow_pickle=False) as z:
                    if np.array_equal(z["key"], key) and z["residency"].shape == (n,):
                        return np.asarray(z["residency"], dtype=np.float64)
            except (OSError, ValueError, KeyError, zipfile.BadZipFile):
                pass
        residency = lp_residency(self.prepared, self.capacity)
        with atomic_path(cache) as tmp, tmp.open("wb") as fh:
            np.savez(fh, key=key, residency=residency)
        return residency

    def fresh_references(self) -> References:
        """The references recomputed without the cache (what ``validate`` uses)."""
        return compute_references(self.prepared, self.capacity, self.suite.bound_anchored)

    def anchor_bytes(self, refs: References | None = None) -> int:
        """Bytes moved that score 1: the lower bound, or Belady's bytes."""
        refs = refs or self.references
        return refs.bound.bytes if self.suite.bound_anchored else refs.belady.bytes_moved
