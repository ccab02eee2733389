"""One evaluation: any agent over a suite split, as result rows and their aggregate.

The leaderboard, PPO's and the LLM's validation loops and users' own scripts all call :func:`evaluate`::

    from eval.evaluate import evaluate
    result = evaluate(my_agent, "tcb-v2", "validation")   # a Policy, an SB3 model or f(obs) -> int
    print(result.score, result.per_task)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.adapters import as_policy
from agents.rollout import run_policy, run_policy_batched
from envs.benchmarks import Instance, Suite, get_suite
from envs.trace import Trace
from eval.metrics import aggregate, iqm
from eval.provenance import package_versions
from eval.rows import make_row


@dataclass
class Evaluation:
    """Rows of one agent on one split, and their summaries."""

    agent: str
    suite: str
    split: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    @property
    def score(self) -> float:
        """IQM of the finite normalized byte scores (NaN when there are none)."""
        s = np.asarray([r["norm_byte_score"] for r in self.rows], dtype=np.float64)
        s = s[np.isfinite(s)]
        return float(iqm(s)) if s.size else float("nan")

    @property
    def per_task(self) -> dict[str, float]:
        """Mean normalized byte score of each task."""
        out: dict[str, list[float]] = {}
        for r in self.rows:
            out.setdefault(r["task"], []).append(r["norm_byte_score"])
        return {t: float(np.nanmean(v)) if np.isfinite(v).any() else float("nan") for t, v in out.items()}

    @property
    def byte_hit_ratio(self) -> float:
        return float(np.mean([r["byte_hit_ratio"] for r in self.rows])) if self.rows else float("nan")

    @property
    def bytes_moved(self) -> float:
        return float(np.mean([r["bytes_moved"] for r in self.rows])) if self.rows else float("nan")

    def summary(self, seed: int = 0) -> dict[str, float]:
        """IQM with its 95% stratified-bootstrap CI (strata = tasks); see :func:`eval.metrics.aggregate`."""
        by_task: dict[str, list[float]] = {}
        for r in self.rows:
            by_task.setdefault(r["task"], []).append(r["norm_byte_score"])
        return aggregate([np.asarray(v) for v in by_task.values()], seed=seed)


def select_instances(
    suite: str | Suite, split: str, *, seeds: Sequence[int] | None = None, tasks: Sequence[str] | None = None,
    max_instances: int = 0,
) -> list[Instance]:  # fmt: skip
    """The instances of a split, optionally only some seeds and tasks, and at most ``max_instances`` (0 = all)."""
    s = get_suite(suite) if isinstance(suite, str) else suite
    if max_instances < 0:
        raise ValueError(f"max_instances must be >= 0, got {max_instances}")
    insts = s.instances(split, tasks=None if tasks is None else tuple(tasks))
    if seeds is not None:
        unknown = sorted(set(seeds) - set(s.seeds[split]))
        if unknown:
            raise ValueError(f"seed {unknown[0]} is not in the {split} split of {s.name}")
        insts = [i for i in insts if i.seed in set(seeds)]
    return insts[: max_instances or None]


def evaluate(
    agent: Any,
    suite: str | Suite = "tcb-v2",
    split: str = "validation",
    *,
    seeds: Sequence[int] | None = None,
    tasks: Sequence[str] | None = None,
    max_instances: int = 0,
    instances: Sequence[Instance] | None = None,
    name: str | None = None,
    k: int | None = None,
    candidates: str = "lru",
    versions: dict[str, str] | None = None,
    trace: Trace | str | Path | None = None,
    capacity: Any = None,
    mode: str = "tensor",
) -> Evaluation:
    """Runs ``agent`` greedily on every instance of a split and returns its rows.

    Args:
        agent: A registered agent's name (a built-in or a leaderboard entry), a :class:`~agents.base.Policy`, an
            SB3 model or a callable ``f(obs[, mask]) -> int`` over the env's observation (see
            :func:`agents.adapters.as_policy`).
        suite: Suite name or object; ``split``: ``train``, ``validation`` or ``test``.
        seeds, tasks, max_instances: Restrict the instances (see :func:`select_instances`).
        instances: Run exactly these instead (the leaderboard passes its own, so reference runs are shared).
        name: Agent name in the rows (default: the policy's).
        k, candidates: Candidate count and rule of an observation-based agent (its env's; SB3 models default to
            their action space's size).
        versions: Package versions to record (default: this process's).
        trace, capacity, mode: Run on your own trace instead (a :class:`~envs.trace.Trace` or a file in any
            format) at one capacity or a list of them (bytes, ``"4GiB"``, a fraction of the peak live bytes, or a
            :class:`~envs.sim.Headroom`; default headroom 0.3), with the same reference runs, scores and step time
            as a suite's rows (:mod:`envs.benchmarks.own_trace`).
    """
    if isinstance(agent, str):
        from eval.leaderboard.entries import registry

        agent = registry().make(agent)  # a ValueError naming the registered agents otherwise
    if k is None:
        space = getattr(agent, "action_space", None)
        k = int(space.n) if hasattr(space, "n") else 16
    policy = as_policy(agent, k=k, rule=candidates, name=name)
    label = name or policy.name
    if trace is not None:
        from envs.benchmarks.own_trace import trace_instances
        from envs.sim.capacity import Headroom
        from envs.trace.formats import read_trace

        source = trace if isinstance(trace, Trace) else read_trace(trace)
        instances = trace_instances(source, Headroom(0.3) if capacity is None else capacity, mode)
        split = "own"
    insts = list(instances) if instances is not None else select_instances(
        suite, split, seeds=seeds, tasks=tasks, max_instances=max_instances
    )  # fmt: skip
    suite_name = insts[0].suite.name if insts else (suite if isinstance(suite, str) else suite.name)
    versions = versions or package_versions()
    if policy.batched and policy.engine_policy is None:
        runs = run_policy_batched([(i.prepared, i.capacity, i.seed) for i in insts], policy)
    else:
        runs = [run_policy(i.prepared, policy, i.capacity, seed=i.seed) for i in insts]
    config = policy.config()
    rows = [make_row(inst, label, config, run, versions) for inst, run in zip(insts, runs, strict=True)]
    return Evaluation(label, suite_name, split, rows)
