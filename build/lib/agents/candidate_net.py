"""The candidate-scoring network shared by the PPO agent's training policy and its exported inference policy.

Every candidate row (its ``CANDIDATE_FEATURES`` plus the decision's ``GLOBAL_FEATURES``) goes through one shared
MLP that outputs a logit, so the network is permutation-equivariant over candidates and its weights do not depend
on K. The critic mean-pools the candidates' hidden vectors (valid slots only) and adds the global features.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from envs.gym.features import N_CAND_FEATURES, N_GLOBAL_FEATURES

#: Bumped when the network layout changes, so an old export is refused instead of misread.
NET_VERSION = 1


@dataclass(frozen=True)
class NetConfig:
    """Shape of a :class:`CandidateNet` (saved next to exported weights)."""

    k: int
    hidden: int = 64
    n_cand_features: int = N_CAND_FEATURES
    n_global_features: int = N_GLOBAL_FEATURES
    net_version: int = NET_VERSION

    def to_dict(self) -> dict:
        return asdict(self)


class CandidateNet(nn.Module):
    """Per-candidate actor logits and a pooled critic latent from a flat env observation."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d_in = cfg.n_cand_features + cfg.n_global_features
        h = cfg.hidden
        self.actor_body = nn.Sequential(nn.Linear(d_in, h), nn.Tanh(), nn.Linear(h, h), nn.Tanh())
        self.actor_head = nn.Linear(h, 1)
        self.critic_body = nn.Sequential(nn.Linear(d_in, h), nn.Tanh())
        self.critic_head = nn.Sequential(nn.Linear(h + cfg.n_global_features, h), nn.Tanh())
        self.latent_dim_pi = cfg.k
        self.latent_dim_vf = h
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.orthogonal_(m.weight, gain=2**0.5)
                nn.init.zeros_(m.bias)
        nn.init.orthogonal_(self.actor_head.weight, gain=0.01)

    def _split(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f = self.cfg.n_cand_features
        k = (obs.shape[1] - self.cfg.n_global_features) // f  # any K works: the weights are shared per candidate
        cand = obs[:, : k * f].reshape(-1, k, f)
        glob = obs[:, k * f :]
        rows = torch.cat([cand, glob.unsqueeze(1).expand(-1, k, -1)], dim=-1)
        return rows, cand[..., 0:1], glob

    def forward_actor(self, obs: torch.Tensor) -> torch.Tensor:
        """Logits, one per candidate slot (invalid slots are masked by the caller)."""
        rows, _, _ = self._split(obs)
        return self.actor_head(self.actor_body(rows)).squeeze(-1)

    def forward_critic(self, obs: torch.Tensor) -> torch.Tensor:
        rows, valid, glob = self._split(obs)
        hid = self.critic_body(rows) * valid
        pooled = hid.sum(dim=1) / valid.sum(dim=1).clamp(min=1.0)
        return self.critic_head(torch.cat([pooled, glob], dim=-1))

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.forward_actor(obs), self.forward_critic(obs)


def masked_greedy(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The deterministic action exactly as sb3-contrib computes it (argmax of the masked categorical's probs)."""
    masked = torch.where(mask, logits, torch.tensor(-1e8, dtype=logits.dtype))
    probs = torch.distributions.Categorical(logits=masked, validate_args=False).probs
    return torch.argmax(probs, dim=1)
