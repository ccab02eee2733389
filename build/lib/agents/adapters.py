"""Adapters that turn what users already have into a :class:`~agents.base.Policy`.

:func:`as_policy` accepts a policy object, an SB3 model (anything with ``predict(obs, ...)``, MaskablePPO
included) or a plain callable ``f(observation, mask) -> int`` / ``f(observation) -> int`` over the env's flat
observation, so any of them can be ranked with :func:`eval.evaluate.evaluate`.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Policy
from envs.gym.features import observation_size

if TYPE_CHECKING:
    from envs.gym.features import DecisionView


class ObservationPolicy(Policy):
    """A policy over the env's flat observation (what an RL agent trained on the env sees). It decides from
    observations alone, so rollouts run it through the env's fused step (no decision views built)."""

    observation_batched = True

    def __init__(self, act: Callable[..., Any], k: int, rule: str = "lru", name: str = "custom",
                 observation_version: int = 1) -> None:  # fmt: skip
        self.act = act
        self.name = name
        self.observation_version = observation_version
        self.candidate_k = int(k)
        self.candidate_rule = rule
        try:
            params = inspect.signature(act).parameters
            self._takes_mask = len(params) >= 2
        except (TypeError, ValueError):
            self._takes_mask = False

    def choose(self, view: DecisionView) -> int:
        return self.choose_observations(view.observation(self.observation_version)[None], np.array([view.n]))[0]

    def choose_observations(self, obs: np.ndarray, n_candidates: np.ndarray) -> list[int]:
        """One call of the agent per row; each gets its own copy of the row (an agent may keep what it is given)
        and, if it takes one, the mask of the row's valid candidate slots."""
        slots = np.arange(self.candidate_k)
        out = []
        for row, n in zip(obs, n_candidates, strict=True):
            action = self.act(row.copy(), slots < n) if self._takes_mask else self.act(row.copy())
            out.append(_scalar(action, self.name))
        return out

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.candidate_k, "candidates": self.candidate_rule,
                "observation_version": self.observation_version}  # fmt: skip


class SB3Policy(ObservationPolicy):
    """A Stable-Baselines3 model (PPO, MaskablePPO, DQN, ...) acting greedily on the env's observation."""

    def __init__(self, model: Any, k: int, rule: str = "lru", name: str = "sb3", observation_version: int = 1) -> None:
        params = inspect.signature(model.predict).parameters
        masked = "action_masks" in params

        def act(obs: np.ndarray, mask: np.ndarray) -> Any:
            kwargs = {"action_masks": mask} if masked else {}
            action, _ = model.predict(obs, deterministic=True, **kwargs)
            return action

        super().__init__(act, k, rule, name, observation_version)
        self.model_class = type(model).__name__

    def config(self) -> dict[str, Any]:
        return {**super().config(), "model_class": self.model_class}


def _scalar(action: Any, name: str) -> int:
    arr = np.asarray(action)
    if arr.size != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: an action must be one integer candidate index, got {action!r}")
    return int(arr.reshape(()))


def as_policy(agent: Any, *, k: int = 16, rule: str = "lru", name: str | None = None, observation_version: int = 1) -> Policy:
    """``agent`` as a :class:`~agents.base.Policy`.

    Args:
        agent: A Policy (returned as is), an SB3 model, or a callable over observations.
        k: Candidate slots the observation-based agent expects (its env's ``k``).
        rule: Candidate rule of its env.
        name: Name recorded with the results.
        observation_version: Observation version of its env (an SB3 model's is read from its observation space).

    Raises:
        TypeError: If ``agent`` is none of these.
    """
    if isinstance(agent, Policy):
        return agent
    if hasattr(agent, "predict") and callable(agent.predict):
        space = getattr(agent, "observation_space", None)
        shape = getattr(space, "shape", None)
        if shape is not None and shape[-1:] == (observation_size(k, 2),):
            observation_version = 2
        return SB3Policy(agent, k, rule, name or "sb3", observation_version)
    if callable(agent):
        return ObservationPolicy(agent, k, rule, name or getattr(agent, "__name__", "custom"), observation_version)
    raise TypeError(f"cannot evaluate a {type(agent).__name__}: pass a Policy, an SB3 model or a callable(obs) -> int")
