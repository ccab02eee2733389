"""Running a policy over a whole trace: the compiled fast path for built-in policies, or the episode driver
(:class:`envs.gym.episode.Episode`) for everything else, one trace at a time or several in lockstep."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from agents.base import Policy
from envs.gym.episode import Episode
from envs.gym.features import observation_size
from envs.sim.prepared import PreparedTrace
from envs.sim.simulator import SimResult, simulate


@dataclass(frozen=True)
class Run:
    """A finished run: the counters, the number of decisions and the wall time of the policy loop."""

    result: SimResult
    decisions: int
    seconds: float


def start_episode(prepared: PreparedTrace, policy: Policy, capacity: int, *, k: int | None = None, seed: int = 0) -> Episode:
    """An episode set up for ``policy``: its candidate count and rule, its engine twin, its oracle if it has one."""
    policy.reset(seed)
    episode = Episode(
        prepared,
        capacity,
        k=k or policy.candidate_k,
        rule=policy.candidate_rule,
        engine_policy=policy.engine_policy or "lru",
        engine_choice=policy.uses_engine_choice,
        seed=seed,
        schedule=policy.uses_schedule,
        observation_version=policy.observation_version,
    )
    if policy.uses_oracle:
        policy.attach_oracle(episode.oracle)
    return episode


def run_policy(
    prepared: PreparedTrace, policy: Policy, capacity: int, *, k: int | None = None, seed: int = 0, fast: bool = True
) -> Run:
    """Runs ``policy`` over ``prepared`` at ``capacity`` bytes.

    Args:
        k: Candidates per decision in the step path (None = the policy's ``candidate_k``, else every evictable
            resident tensor).
        fast: Use the compiled path when the policy has one.
    """
    t0 = time.perf_counter()
    if fast and policy.engine_policy is not None:
        policy.reset(seed)
        result = simulate(prepared, policy.engine_policy, capacity, seed=seed)
        return Run(result, result.n_evictions, time.perf_counter() - t0)
    if fast and policy.compiled is not None and k is None:
        from envs.sim.simulator import Simulation

        policy.reset(seed)
        sim = Simulation(prepared, capacity, pause=True, seed=seed)
        decisions = policy.compiled(prepared).play(sim)
        sim.set_status(False)
        return Run(sim.result(), decisions, time.perf_counter() - t0)
    episode = start_episode(prepared, policy, capacity, k=k, seed=seed)
    if _decides_from_observations(policy):
        _play_observations([episode], policy)
        return Run(episode.result(), episode.n_decisions, time.perf_counter() - t0)
    result = episode.play(policy.choose)
    return Run(result, episode.n_decisions, time.perf_counter() - t0)


def run_policy_batched(jobs: list[tuple[PreparedTrace, int, int]], policy: Policy) -> list[Run]:
    """Runs ``policy`` over several traces in lockstep, asking :meth:`Policy.choose_batch` for one decision of
    every unfinished trace at a time (one batched model call instead of one per decision).

    Args:
        jobs: ``(prepared, capacity, seed)`` per trace.

    Returns:
        One :class:`Run` per job; ``seconds`` is the shared wall time split in proportion to each job's decisions.
    """
    if policy.uses_oracle:
        raise ValueError(f"{policy.name} reads one episode's oracle and cannot run traces in lockstep")
    t0 = time.perf_counter()
    episodes = [start_episode(prepared, policy, cap, seed=seed) for prepared, cap, seed in jobs]
    if _decides_from_observations(policy):
        _play_observations(episodes, policy)
        return _runs(episodes, time.perf_counter() - t0)
    active = [e for e in episodes if not e.advance()]
    while active:
        choices = policy.choose_batch([e.view for e in active])
        for episode, choice in zip(active, choices, strict=True):
            episode.evict(choice)
        active = [e for e in active if not e.advance()]
    return _runs(episodes, time.perf_counter() - t0)


def _decides_from_observations(policy: Policy) -> bool:
    """Whether the env's fused step can serve ``policy``: it decides from observations, which never carry the
    engine's own choice (that is offered in views only)."""
    return policy.observation_batched and not policy.uses_engine_choice


def _play_observations(episodes: list[Episode], policy: Policy) -> None:
    """The lockstep loop of an observation-only policy: each episode's fused step answers its decision and writes
    the next decision's observation into its row of one batch array."""
    size = observation_size(episodes[0].k, episodes[0].observation_version) if episodes else 0
    obs = np.zeros((len(episodes), size), dtype=np.float32)
    for i, episode in enumerate(episodes):
        episode.step(None, obs[i])
    active = [i for i, e in enumerate(episodes) if not e.done]
    while active:
        counts = np.array([episodes[i].n_candidates for i in active])
        choices = policy.choose_observations(obs[active], counts)
        for i, choice, n in zip(active, choices, counts, strict=True):
            obs[i] = 0.0
            if not episodes[i].step(choice, obs[i]):  # the episode's own index check, strict as evict()'s
                raise ValueError(f"{policy.name} chose candidate {choice!r} of {n}")
        active = [i for i in active if not episodes[i].done]


def _runs(episodes: list[Episode], wall: float) -> list[Run]:
    total = max(sum(e.n_decisions for e in episodes), 1)
    return [Run(e.result(), e.n_decisions, wall * e.n_decisions / total) for e in episodes]
