"""TensorCache Gym environments: traces, workloads, the cache simulator, benchmark suites and the Gymnasium env.

Importing this package registers ``tensorcache/Eviction-v1`` and ``tensorcache/Eviction-v2`` with Gymnasium. It loads
neither torch nor numba: the submodules that need them import them.
"""

from gymnasium.envs.registration import register, registry

from envs.trace import Kind, Op, Phase, Trace, TraceError
from envs.version import ENV_ID, ENV_ID_V2, ENV_VERSION, __version__

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.gym.eviction_env:EvictionEnv", max_episode_steps=100_000)
if ENV_ID_V2 not in registry:  # the same env with observation version 2 and the schedule candidate rule
    register(id=ENV_ID_V2, entry_point="envs.gym.eviction_env:EvictionEnv", max_episode_steps=100_000,
             kwargs={"observation_version": 2, "candidates": "schedule"})  # fmt: skip

__all__ = ["ENV_ID", "ENV_ID_V2", "ENV_VERSION", "Kind", "Op", "Phase", "Trace", "TraceError", "__version__"]
