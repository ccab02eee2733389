"""TensorCache Gym environments: traces, workloads, the cache simulator and the Gymnasium env.

Importing this package registers ``tensorcache/Eviction-v0`` with Gymnasium. Heavy modules (torch, numba) are
imported only by the submodules that need them.
"""

from envs.trace import Kind, Op, Phase, Trace, TraceError

__all__ = ["Kind", "Op", "Phase", "Trace", "TraceError"]

from gymnasium.envs.registration import register, registry

if "tensorcache/Eviction-v0" not in registry:
    register(
        id="tensorcache/Eviction-v0",
        entry_point="envs.eviction_env:EvictionEnv",
        max_episode_steps=100_000,
    )
