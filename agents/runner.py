"""Running any policy over a whole trace: the compiled fast path for built-in policies, or the step path
(pause at each eviction, build the decision view, ask the policy) for everything else."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agents.base import Policy
from agents.oracle import Oracle
from envs.features import FeatureBuilder
from envs.sim.simulator import PreparedTrace, SimResult, Simulation


@dataclass(frozen=True)
class Run:
    """A finished run: the counters, the number of decisions and the wall time of the policy loop."""

    result: SimResult
    decisions: int
    seconds: float


def run_policy(
    prepared: PreparedTrace,
    policy: Policy,
    capacity: int,
    *,
    k: int | None = None,
    seed: int = 0,
    fast: bool = True,
) -> Run:
    """Runs ``policy`` over ``prepared`` at ``capacity`` bytes.

    Args:
        k: Candidates per decision in the step path (None = the policy's ``candidate_k``, else every evictable
            resident tensor).
        fast: Use the compiled path when the policy has one.
    """
    policy.reset(seed)
    t0 = time.perf_counter()
    builtin = policy.engine_policy or "lru"
    if fast and policy.engine_policy is not None:
        sim = Simulation(prepared, capacity, policy.engine_policy, seed)
        sim.advance()
        from envs.sim import engine as E

        return Run(sim.result(), int(sim.S[E.S_NEVICT]), time.perf_counter() - t0)
    sim = Simulation(prepared, capacity, builtin, seed, pause=True)
    if policy.uses_oracle:
        oracle = getattr(policy, "oracle", None)
        if isinstance(oracle, Oracle):
            oracle.bind(sim)
    k = k or policy.candidate_k or max(prepared.sizes.shape[0], 1)
    feats = FeatureBuilder.for_trace(prepared.trace, k, policy.candidate_rule)
    decisions = 0
    while not sim.advance():
        view = feats.view(sim)
        choice = policy.choose(view)
        if not 0 <= choice < view.n:
            raise ValueError(f"{policy.name} chose candidate {choice} of {view.n}")
        sim.evict(int(view.candidates[choice]))
        decisions += 1
    return Run(sim.result(), decisions, time.perf_counter() - t0)


def run_policy_batched(jobs: list[tuple[PreparedTrace, int, int]], policy: Policy) -> list[Run]:
    """Runs ``policy`` over several traces in lockstep, asking :meth:`Policy.choose_batch` for one decision of
    every unfinished trace at a time (one batched model call instead of one per decision).

    Args:
        jobs: ``(prepared, capacity, seed)`` per trace.

    Returns:
        One :class:`Run` per job; ``seconds`` is the shared wall time split in proportion to each job's decisions.
    """
    if policy.uses_oracle:
        raise ValueError(f"{policy.name} reads one simulation's oracle and cannot run traces in lockstep")
    t0 = time.perf_counter()
    sims, feats, decisions = [], [], []
    for prepared, capacity, seed in jobs:
        policy.reset(seed)
        sims.append(Simulation(prepared, capacity, policy.engine_policy or "lru", seed, pause=True))
        k = policy.candidate_k or max(prepared.sizes.shape[0], 1)
        feats.append(FeatureBuilder.for_trace(prepared.trace, k, policy.candidate_rule))
        decisions.append(0)
    active = [i for i, sim in enumerate(sims) if not sim.advance()]
    while active:
        views = [feats[i].view(sims[i]) for i in active]
        choices = policy.choose_batch(views)
        still = []
        for i, view, choice in zip(active, views, choices, strict=True):
            if not 0 <= choice < view.n:
                raise ValueError(f"{policy.name} chose candidate {choice} of {view.n}")
            sims[i].evict(int(view.candidates[choice]))
            decisions[i] += 1
            if not sims[i].advance():
                still.append(i)
        active = still
    wall = time.perf_counter() - t0
    total = max(sum(decisions), 1)
    return [Run(sim.result(), d, wall * d / total) for sim, d in zip(sims, decisions, strict=True)]
