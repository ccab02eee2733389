"""The MaskablePPO policy class of the PPO agent: :class:`~agents.candidate_net.CandidateNet` as the
``mlp_extractor``, its per-candidate logits used directly as the action logits."""

from __future__ import annotations

from typing import Any

from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

from agents.candidate_net import CandidateNet, NetConfig
from envs.gym.features import OBSERVATION_VERSIONS, feature_tables, observation_size


class CandidateActorCriticPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy whose actor scores each candidate with one shared MLP."""

    def __init__(self, *args: Any, hidden: int = 64, **kwargs: Any) -> None:
        self.hidden = hidden
        kwargs["ortho_init"] = False  # CandidateNet initialises itself (small actor head)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        k = int(self.action_space.n)
        size = int(self.observation_space.shape[0])
        versions = [v for v in OBSERVATION_VERSIONS if observation_size(k, v) == size]
        if not versions:
            raise ValueError(f"an observation of {size} values matches no observation version for k={k}")
        cand, glob = feature_tables(versions[0])
        self.mlp_extractor = CandidateNet(
            NetConfig(k=k, hidden=self.hidden, n_cand_features=len(cand), n_global_features=len(glob))
        )

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the extractor already outputs one logit per candidate
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    @property
    def net(self) -> CandidateNet:
        return self.mlp_extractor  # type: ignore[return-value]
