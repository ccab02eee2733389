"""The PPO agent at inference: a :class:`~agents.candidate_net.CandidateNet` loaded from safetensors + JSON.

An exported policy is two files: ``policy.safetensors`` (tensors only; loading it cannot run code) and
``policy.json`` (network shape, candidate rule, and provenance). :func:`export_policy` writes them from a trained
network; :meth:`PPOPolicy.load` reads them back and refuses a layout it does not know.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Policy
from envs.gym.episode import EPISODE_RULES
from envs.gym.features import feature_tables

if TYPE_CHECKING:
    from agents.candidate_net import CandidateNet
    from agents.mlp_actor import MLPActor
    from envs.gym.features import DecisionView

WEIGHTS, CONFIG = "policy.safetensors", "policy.json"
EXPORT_FORMAT = "tensorcache-candidate-net"
#: An SB3 ``MlpPolicy``'s actor (:class:`agents.mlp_actor.MLPActor`), written by :mod:`training.export_sb3`.
MLP_FORMAT = "tensorcache-mlp-actor"


class PPOPolicy(Policy):
    """Greedy (deterministic) policy of a trained candidate-scoring network."""

    def __init__(self, net: CandidateNet | MLPActor, rule: str, name: str = "ppo", meta: dict[str, Any] | None = None,
                 observation_version: int = 1) -> None:  # fmt: skip
        if rule not in EPISODE_RULES:
            raise ValueError(f"unknown candidate rule {rule!r}; valid: {', '.join(EPISODE_RULES)}")
        cand, glob = feature_tables(observation_version)
        if (net.cfg.n_cand_features, net.cfg.n_global_features) != (len(cand), len(glob)):
            raise ValueError(f"the network reads {net.cfg.n_cand_features} + {net.cfg.n_global_features} features, "
                             f"observation version {observation_version} has {len(cand)} + {len(glob)}")  # fmt: skip
        self.observation_version = observation_version
        self.net = net
        self.name = name
        self.candidate_k = net.cfg.k
        self.candidate_rule = rule
        self.meta = meta or {}
        from agents.candidate_net import CandidateNet

        if isinstance(net, CandidateNet):
            self.compiled = self._compiled  # whole runs play the network in compiled code (agents.compiled_net)

    def _compiled(self, prepared):
        from agents.compiled_net import CompiledCandidateNet

        return CompiledCandidateNet(self.net, self.candidate_k, self.candidate_rule, prepared, self.observation_version)

    def choose(self, view: DecisionView) -> int:
        obs = view.observation(self.observation_version)[None, :].copy()  # a view's observation is read-only
        return self.choose_observations(obs, np.array([view.n]))[0]

    batched = True
    observation_batched = True

    def choose_batch(self, views: list[DecisionView]) -> list[int]:
        """One forward pass for the decisions of several traces."""
        obs = np.stack([v.observation(self.observation_version) for v in views])
        return self.choose_observations(obs, np.array([v.n for v in views]))

    def choose_observations(self, obs: np.ndarray, n_candidates: np.ndarray) -> list[int]:
        """Greedy choices of a batch of observations (one forward pass); candidates past each row's count are
        masked."""
        import torch

        from agents.candidate_net import masked_greedy

        if not np.isfinite(obs).all():
            raise ValueError(f"{self.name}: non-finite observation feature")
        mask = np.arange(self._k_of(obs))[None, :] < np.asarray(n_candidates)[:, None]
        with torch.no_grad():
            logits = self.net.forward_actor(torch.as_tensor(obs))
            return [int(a) for a in masked_greedy(logits, torch.as_tensor(mask))]

    def _k_of(self, obs: np.ndarray) -> int:
        cfg = self.net.cfg
        return (obs.shape[-1] - cfg.n_global_features) // cfg.n_cand_features

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.candidate_k, "candidates": self.candidate_rule,
                "observation_version": self.observation_version, **self.meta}  # fmt: skip

    @classmethod
    def load(cls, directory: str | Path, name: str | None = None) -> PPOPolicy:
        """Loads ``policy.safetensors`` + ``policy.json`` from ``directory``.

        Raises:
            ValueError: If a file is missing, the format or network version is unknown, or the tensors do not
                match the declared shape.
        """
        from safetensors.torch import load_file

        from agents.candidate_net import NET_VERSION, CandidateNet, NetConfig

        d = Path(directory)
        for f in (WEIGHTS, CONFIG):
            if not (d / f).is_file():
                raise ValueError(f"{d}: missing {f} (an exported policy needs {WEIGHTS} and {CONFIG})")
        spec = json.loads((d / CONFIG).read_text())
        if spec.get("format") == MLP_FORMAT:
            from agents.mlp_actor import MLPActor, MLPConfig

            try:
                net = MLPActor(MLPConfig(**{**spec["net"], "widths": tuple(spec["net"]["widths"])}))
            except (TypeError, KeyError, ValueError) as exc:
                raise ValueError(f"{d / CONFIG}: bad network shape ({exc})") from None
        elif spec.get("format") == EXPORT_FORMAT:
            net_cfg = NetConfig(**spec["net"])
            if net_cfg.net_version != NET_VERSION:
                raise ValueError(f"{d / CONFIG}: network version {net_cfg.net_version}, this code reads {NET_VERSION}")
            net = CandidateNet(net_cfg)
        else:
            raise ValueError(f"{d / CONFIG}: format {spec.get('format')!r} is not {EXPORT_FORMAT!r} or {MLP_FORMAT!r}")
        import torch
        from safetensors import SafetensorError

        try:
            tensors = load_file(str(d / WEIGHTS))
            net.load_state_dict(tensors, strict=True)
        except (RuntimeError, SafetensorError) as exc:
            raise ValueError(f"{d / WEIGHTS}: tensors do not match the network in {CONFIG}: {exc}") from None
        bad = [k for k, v in tensors.items() if not bool(torch.isfinite(v).all())]
        if bad:
            raise ValueError(f"{d / WEIGHTS}: tensor {bad[0]} holds NaN or infinite values")
        net.eval()
        version = spec.get("observation_version", 1)  # exports before observation version 2 read version 1
        return cls(net, spec["candidates"], name or spec.get("name", "ppo"), spec.get("meta"), version)


def export_policy(net: CandidateNet | MLPActor, rule: str, directory: str | Path, name: str = "ppo", meta: dict | None = None,
                  observation_version: int = 1) -> Path:  # fmt: skip
    """Writes ``net`` as ``policy.safetensors`` + ``policy.json`` into ``directory`` (created)."""
    from safetensors.torch import save_file

    from envs.io.atomic import atomic_path, write_text_atomic

    d = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    with atomic_path(d / WEIGHTS) as tmp:
        save_file(state, str(tmp))
    from agents.mlp_actor import MLPActor

    fmt = MLP_FORMAT if isinstance(net, MLPActor) else EXPORT_FORMAT
    spec = {"format": fmt, "name": name, "net": net.cfg.to_dict(), "candidates": rule, "meta": meta or {}}
    if observation_version != 1:  # version 1 exports stay byte for byte as they were
        spec["observation_version"] = observation_version
    write_text_atomic(d / CONFIG, json.dumps(spec, indent=2, sort_keys=True))
    return d
