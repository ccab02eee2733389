"""The MaskablePPO policy class of the PPO agent: :class:`~agents.candidate_net.CandidateNet` as the
``mlp_extractor``, its per-candidate logits used directly as the action logits."""

from __future__ import annotations

from typing import Any

from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

from agents.candidate_net import CandidateNet, NetConfig


class CandidateActorCriticPolicy(MaskableActorCriticPolicy):
    """MaskablePPO policy whose actor scores each candidate with one shared MLP."""

    def __init__(self, *args: Any, hidden: int = 64, **kwargs: Any) -> None:
        self.hidden = hidden
        kwargs["ortho_init"] = False  # CandidateNet initialises itself (small actor head)
        super().__init__(*args, **kwargs)

    def _build_mlp_extractor(self) -> None:
        k = int(self.action_space.n)
        self.mlp_extractor = CandidateNet(NetConfig(k=k, hidden=self.hidden))

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        self.action_net = nn.Identity()  # the extractor already outputs one logit per candidate
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    @property
    def net(self) -> CandidateNet:
        return self.mlp_extractor  # type: ignore[return-value]
