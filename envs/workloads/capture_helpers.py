"""Helpers the captured workloads share: registering parameters, gradients and optimizer state, and trace metadata."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from envs.capture import AccessRecorder, Registry
from envs.trace import Kind
from envs.workloads.spec import GENERATOR_VERSION, Shape, TraceSpec, WorkloadError, check_positive

__all__ = ["GENERATOR_VERSION", "Shape", "TraceSpec", "TrainStepState", "WorkloadError", "base_meta", "check_positive",
           "register_params"]  # fmt: skip


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


def base_meta(spec: TraceSpec, generator: str, config: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Metadata common to every generated trace."""
    return {
        "workload": spec.workload,
        "preset": spec.preset,
        "spec": spec.to_dict(),
        "config": config,
        "seed": spec.seed,
        "generator": generator,
        "generator_version": GENERATOR_VERSION,
        "method": spec.method,
        **extra,
    }
