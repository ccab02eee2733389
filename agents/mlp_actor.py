"""A plain MLP actor over the flat env observation: the policy network of Stable-Baselines3's ``MlpPolicy`` (PPO or
MaskablePPO) once exported (see :mod:`training.export_sb3`). It offers the same ``cfg`` and ``forward_actor`` as
:class:`~agents.candidate_net.CandidateNet`, so :class:`~agents.ppo.PPOPolicy` plays it unchanged."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

#: Activations SB3 policies use, by the name written to ``policy.json``.
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU, "gelu": nn.GELU,
               "silu": nn.SiLU}  # fmt: skip


@dataclass(frozen=True)
class MLPConfig:
    """Shape of an :class:`MLPActor`: layer widths from the observation to the ``k`` logits, and the activation
    between layers (none after the last)."""

    k: int
    widths: tuple[int, ...]
    activation: str
    n_cand_features: int
    n_global_features: int

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if len(self.widths) < 2 or self.widths[-1] != self.k or min(self.widths) < 1:
            raise ValueError(f"layer widths {list(self.widths)} must run from the observation to k={self.k} logits")
        if self.widths[0] != self.k * self.n_cand_features + self.n_global_features:
            raise ValueError(f"the first layer reads {self.widths[0]} values; the observation has "
                             f"{self.k * self.n_cand_features + self.n_global_features}")  # fmt: skip

    def to_dict(self) -> dict:
        return {**asdict(self), "widths": list(self.widths)}


class MLPActor(nn.Module):
    """``Linear -> activation -> ... -> Linear``: one logit per candidate slot."""

    def __init__(self, cfg: MLPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(cfg.widths[:-1], cfg.widths[1:], strict=True)):
            layers.append(nn.Linear(a, b))
            if i < len(cfg.widths) - 2:
                layers.append(ACTIVATIONS[cfg.activation]())
        self.layers = nn.Sequential(*layers)

    def forward_actor(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits, one per candidate slot (invalid slots are masked by the caller)."""
        return self.layers(obs)
