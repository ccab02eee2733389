"""Train stable-baselines3 agents through Gymnasium's own vector envs (e.g. ``AsyncVectorEnv``).

SB3 expects its ``VecEnv`` API: same-step autoreset with the last observation in ``infos[i]
["terminal_observation"]``, one info dict per env, and ``env_method`` for ``action_masks``. Gymnasium's vector
envs return infos as one dict of arrays and (by default) reset on the *next* step. :class:`GymnasiumVecEnv`
builds the wrapped vector env with ``autoreset_mode=SAME_STEP`` and translates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnv


class GymnasiumVecEnv(VecEnv):
    """SB3 ``VecEnv`` over a Gymnasium ``AsyncVectorEnv`` (``asynchronous=True``) or ``SyncVectorEnv``.

    Args:
        env_fns: One zero-argument constructor per env (must be picklable for the async mode).
        asynchronous: Worker processes (``AsyncVectorEnv``) or in-process (``SyncVectorEnv``).
        context: multiprocessing start method of the async mode.
    """

    def __init__(self, env_fns: Sequence[Callable[[], gym.Env]], asynchronous: bool = True, context: str | None = "forkserver"):
        if asynchronous:
            self.venv = AsyncVectorEnv(env_fns, context=context, autoreset_mode=AutoresetMode.SAME_STEP)
        else:
            self.venv = SyncVectorEnv(env_fns, autoreset_mode=AutoresetMode.SAME_STEP)
        super().__init__(len(env_fns), self.venv.single_observation_space, self.venv.single_action_space)
        self._actions: np.ndarray | None = None
        self._seed: int | None = None

    # -- stepping -----------------------------------------------------------------------------------------------
    def reset(self) -> np.ndarray:
        obs, info = self.venv.reset(seed=self._seed)
        self._seed = None
        self.reset_infos = self._split(info, np.zeros(self.num_envs, dtype=bool))
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self):
        obs, rewards, terminated, truncated, info = self.venv.step(self._actions)
        dones = np.logical_or(terminated, truncated)
        infos = self._split(info, dones)
        for i in np.flatnonzero(dones):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        return obs, rewards.astype(np.float32), dones, infos

    def _split(self, info: dict[str, Any], dones: np.ndarray) -> list[dict[str, Any]]:
        """Gymnasium's dict of arrays (with ``_key`` presence masks, nested for dict values) -> one dict per env.

        For an env that finished this step, its last step's info (``final_info``) is merged in and its last
        observation becomes ``terminal_observation``, as SB3 expects.
        """
        n = self.num_envs
        out: list[dict[str, Any]] = [{} for _ in range(n)]
        for key, values in info.items():
            if key.startswith("_"):
                continue
            present = np.asarray(info.get(f"_{key}", np.ones(n, dtype=bool)), dtype=bool)
            if key == "final_obs":
                for i in np.flatnonzero(present & dones):
                    out[i]["terminal_observation"] = values[i]
            elif key == "final_info":
                per_env = self._split(values, np.zeros(n, dtype=bool))
                for i in np.flatnonzero(present & dones):
                    out[i].update(per_env[i])
            elif isinstance(values, dict):
                per_env = self._split(values, np.zeros(n, dtype=bool))
                for i in np.flatnonzero(present):
                    out[i][key] = per_env[i]
            else:
                for i in np.flatnonzero(present):
                    out[i][key] = values[i]
        return out

    # -- attributes and methods of the sub-envs ------------------------------------------------------------------
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        self._seed = seed
        return [None if seed is None else seed + i for i in range(self.num_envs)]

    def close(self) -> None:
        self.venv.close()

    def get_attr(self, attr_name: str, indices=None) -> list[Any]:
        return [v for i, v in enumerate(self.venv.get_attr(attr_name)) if i in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices=None) -> None:
        if indices is not None and list(self._indices(indices)) != list(range(self.num_envs)):
            raise NotImplementedError("set_attr on a subset of Gymnasium vector envs")
        self.venv.set_attr(attr_name, [value] * self.num_envs)

    def env_method(self, method_name: str, *method_args, indices=None, **method_kwargs) -> list[Any]:
        results = self.venv.call(method_name, *method_args, **method_kwargs)
        keep = set(self._indices(indices))
        return [r for i, r in enumerate(results) if i in keep]

    def env_is_wrapped(self, wrapper_class, indices=None) -> list[bool]:
        return [False for _ in self._indices(indices)]

    def _indices(self, indices) -> Sequence[int]:
        if indices is None:
            return range(self.num_envs)
        if isinstance(indices, int):
            return [indices]
        return list(indices)
