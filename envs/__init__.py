"""TensorCache Gym environments: traces, workloads, the cache simulator, benchmark suites and the Gymnasium env.

Importing this package registers ``tensorcache/Eviction-v1`` and ``tensorcache/Eviction-v2`` with Gymnasium. It loads
neither torch nor numba: the submodules that need them import them.

Installed from a wheel (under ``site-packages``), the compiled kernels are cached under the user's cache directory
(``$XDG_CACHE_HOME/tensorcache/numba/<version>``) instead of beside the sources, unless ``NUMBA_CACHE_DIR`` is set:
files numba left in ``site-packages`` outlive ``pip uninstall`` and shadow a later editable install.
"""

import os
import sys
from pathlib import Path

from gymnasium.envs.registration import register, registry

from envs.trace import Kind, Op, Phase, Trace, TraceError
from envs.version import ENV_ID, ENV_ID_V2, ENV_VERSION, __version__


def _kernel_cache_outside_site_packages() -> None:
    installed = {"site-packages", "dist-packages"} & set(Path(__file__).resolve().parts)
    if not installed or os.environ.get("NUMBA_CACHE_DIR"):
        return
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tensorcache" / "numba" / __version__
    os.environ["NUMBA_CACHE_DIR"] = str(root)  # read when numba is first imported
    config = sys.modules.get("numba.core.config")
    if config is not None:  # numba came first: its kernels decorated from now on read the setting here
        config.CACHE_DIR = str(root)


_kernel_cache_outside_site_packages()

if ENV_ID not in registry:
    register(id=ENV_ID, entry_point="envs.gym.eviction_env:EvictionEnv", max_episode_steps=100_000)
if ENV_ID_V2 not in registry:  # the same env with observation version 2 and the schedule candidate rule
    register(id=ENV_ID_V2, entry_point="envs.gym.eviction_env:EvictionEnv", max_episode_steps=100_000,
             kwargs={"observation_version": 2, "candidates": "schedule"})  # fmt: skip

__all__ = ["ENV_ID", "ENV_ID_V2", "ENV_VERSION", "Kind", "Op", "Phase", "Trace", "TraceError", "__version__"]
