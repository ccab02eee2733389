"""Recorder concepts of a training step: registering parameters as weights, and giving gradients and optimizer state
stable ids and kinds across iterations (used by :func:`envs.capture.capture`, the built-in families and Hugging Face
capture)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from envs.capture.recorder import AccessRecorder, Registry
from envs.trace import Kind


def register_params(model: nn.Module, rec: AccessRecorder, registry: Registry, layer_of_name: Any) -> dict[int, int]:
    """Registers every parameter storage as a weight; returns parameter-position -> layer."""
    layers = {}
    for i, (name, p) in enumerate(model.named_parameters()):
        lay = layer_of_name(name)
        registry.add(rec.uid(p), Kind.WEIGHT, lay)
        layers[i] = lay
    return layers


@dataclass
class TrainStepState:
    """Keeps the first-seen gradient id of each parameter so gradients keep one id across iterations."""

    grad_uid: dict[int, int] = field(default_factory=dict)

    def register_grads(self, model: nn.Module, rec: AccessRecorder, registry: Registry, layers: dict[int, int]) -> None:
        for i, p in enumerate(model.parameters()):
            if p.grad is None:
                continue
            uid = rec.uid(p.grad)
            canonical = self.grad_uid.setdefault(i, uid)
            registry.add(uid, Kind.GRADIENT, layers[i], canonical)

    @staticmethod
    def register_optimizer_state(
        model: nn.Module, opt: torch.optim.Optimizer, rec: AccessRecorder, registry: Registry, layers: dict
    ) -> None:
        for i, p in enumerate(model.parameters()):
            for value in opt.state.get(p, {}).values():
                if isinstance(value, torch.Tensor):
                    registry.add(rec.uid(value), Kind.OPTIMIZER_STATE, layers[i])
