"""Workload ``cnn-train``: SGD-with-momentum training steps of a ResNet (bottleneck) on ImageNet-shaped batches.

Seeded per step: batch size (choices capped by ``--batch``) and input resolution (multi-scale training), and per
block whether the downsample
shortcut runs before or after the main path (the order of independent branches). Batch-norm running statistics
are persistent non-trainable state updated by every step; they are labelled ``optimizer_state`` (the trace kinds
have no separate "buffer" kind), so weight bytes stay exactly parameter bytes.
"""

from __future__ import annotations

import re

import numpy as np
import torch
from torch.nn import functional as F

from envs.capture import AccessRecorder, Registry, build_trace
from envs.capture.train_state import TrainStepState, register_params
from envs.trace import Kind, Phase, Trace
from envs.workloads.resnet_model import PRESETS, ResNet, ResNetConfig
from envs.workloads.spec import Shape, TraceSpec, WorkloadError, base_meta

SHAPES = Shape(batch=(16, 32, 48, 64), seq=(160, 192, 224, 256))
_BLOCK = re.compile(r"^layers\.(\d+)\.")


class CNNTrain:
    """ResNet training (``cnn-train``)."""

    name = "cnn-train"
    family = "CNN, training"
    description = "ResNet bottleneck training with SGD momentum; seeded batch, resolution and branch order"
    has_batch = True
    methods = ("captured",)
    default_iterations = 2

    def presets(self) -> dict[str, ResNetConfig]:
        return dict(PRESETS)

    def generate(self, spec: TraceSpec) -> Trace:
        if spec.preset not in PRESETS:
            raise WorkloadError(f"unknown preset {spec.preset!r} for workload {spec.workload!r}; valid: {', '.join(PRESETS)}")
        cfg = PRESETS[spec.preset]
        if spec.layers:
            try:
                cfg = cfg.with_layers(spec.layers)
            except ValueError as exc:
                raise WorkloadError(str(exc)) from None
        iterations = spec.iterations or self.default_iterations
        rng = np.random.default_rng(spec.seed)
        sampler = SHAPES.capped(spec.batch)
        shapes = [sampler.draw(rng) for _ in range(iterations)]
        return capture_resnet(cfg, shapes, rng, spec, self.name)


def capture_resnet(
    cfg: ResNetConfig, shapes: list[tuple[int, int]], rng: np.random.Generator, spec: TraceSpec, name: str
) -> Trace:
    with torch.device("meta"):
        model = ResNet(cfg).to(cfg.torch_dtype)
    order = [bool(b) for b in rng.integers(0, 2, size=len(model.layers))]
    for block, first in zip(model.layers, order, strict=True):
        block.shortcut_first = first
    n = cfg.n_layers

    def layer_of(param_name: str) -> int:
        m = _BLOCK.match(param_name)
        return int(m.group(1)) + 1 if m else (0 if param_name.startswith("stem") else n + 1)

    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4, foreach=True)
    rec, registry, state = AccessRecorder(n), Registry(), TrainStepState()
    layers = register_params(model, rec, registry, layer_of)
    for bname, buf in model.named_buffers():
        registry.add(rec.uid(buf), Kind.OPTIMIZER_STATE, layer_of(bname))
    with rec:
        for it, (batch, res) in enumerate(shapes):
            rec.iteration = it
            images = torch.empty((batch, 3, res, res), dtype=cfg.torch_dtype, device="meta")
            labels = torch.empty((batch,), dtype=torch.long, device="meta")
            registry.add(rec.uid(images), Kind.INPUT, 0)
            registry.add(rec.uid(labels), Kind.INPUT, n + 1)
            rec.phase = Phase.FORWARD
            loss = F.cross_entropy(model(images), labels)
            del images, labels
            rec.phase = Phase.BACKWARD
            loss.backward()
            del loss
            state.register_grads(model, rec, registry, layers)
            rec.phase = Phase.OPTIMIZER
            opt.step()
            state.register_optimizer_state(model, opt, rec, registry, layers)
            opt.zero_grad(set_to_none=True)
    rec.close()
    extra = {"shapes": shapes, "shortcut_first": order}
    return build_trace(rec, registry, base_meta(spec, name, cfg.to_dict(), extra))
