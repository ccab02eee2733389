"""Workload ``transformer-train``: one training step (forward, backward, AdamW) of a decoder-only transformer,
repeated for several iterations with seeded sequence lengths and batch sizes (variable-length batches)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import torch
from torch.nn import functional as F

from envs.capture import AccessRecorder, Registry, build_trace
from envs.capture.train_state import TrainStepState, register_params
from envs.trace import Kind, Phase, Trace
from envs.workloads.decoder_model import PRESETS, DecoderConfig, DecoderLM
from envs.workloads.spec import Shape, TraceSpec, WorkloadError, base_meta

TRAIN_SHAPES = {
    "mistral-7b": Shape(batch=(1,), seq=(1024, 1536, 2048, 3072, 4096)),
    "gpt2-small": Shape(batch=(4, 8, 12, 16), seq=(256, 512, 768, 1024)),
    "mixtral-8x7b": Shape(batch=(1,), seq=(512, 1024, 2048)),
}
_LAYER_NAME = re.compile(r"^layers\.(\d+)\.")


def decoder_param_layer(n_layers: int):
    """Maps a parameter name to its layer index (0 = embeddings, 1..L = blocks, L+1 = final norm/head)."""

    def layer_of(name: str) -> int:
        m = _LAYER_NAME.match(name)
        if m:
            return int(m.group(1)) + 1
        return 0 if name.startswith("embed") else n_layers + 1

    return layer_of


def resolve_config(presets: dict[str, DecoderConfig], spec: TraceSpec) -> DecoderConfig:
    if spec.preset not in presets:
        raise WorkloadError(f"unknown preset {spec.preset!r} for workload {spec.workload!r}; valid: {', '.join(sorted(presets))}")
    cfg = presets[spec.preset]
    return dataclasses.replace(cfg, n_layers=spec.layers) if spec.layers else cfg


def make_router(cfg: DecoderConfig, rng: np.random.Generator, skew: float = 1.0):
    """A seeded Mixtral-style router: per layer a Zipf-like expert popularity (random permutation per layer)
    and per token top-k distinct experts drawn from it. Returns ``router(layer, n_tokens)``."""
    ranks = np.arange(1, cfg.n_experts + 1, dtype=np.float64) ** -skew
    popularity = []
    for _ in range(cfg.n_layers):
        p = ranks[rng.permutation(cfg.n_experts)]
        popularity.append(p / p.sum())

    def router(layer: int, n_tokens: int) -> list[list[int]]:
        return [
            sorted(rng.choice(cfg.n_experts, size=cfg.experts_per_token, replace=False, p=popularity[layer]))
            for _ in range(n_tokens)
        ]

    return router


class TransformerTrain:
    """Decoder-only transformer training (``transformer-train``)."""

    name = "transformer-train"
    family = "decoder transformer, training"
    description = "forward + backward + AdamW of a decoder-only LM; seeded sequence lengths per step"
    has_batch = True
    methods = ("captured", "analytic")
    default_iterations = 2

    def presets(self) -> dict[str, DecoderConfig]:
        return {k: v for k, v in PRESETS.items() if v.mlp != "moe"}

    def generate(self, spec: TraceSpec) -> Trace:
        cfg = resolve_config(self.presets(), spec)
        iterations = spec.iterations or self.default_iterations
        rng = np.random.default_rng(spec.seed)
        sampler = TRAIN_SHAPES[spec.preset].capped(spec.batch)
        shapes = [sampler.draw(rng) for _ in range(iterations)]
        if spec.method == "analytic":
            from envs.workloads.transformer_analytic import analytic_train_trace

            trace_arrays = analytic_train_trace(cfg, shapes)
            meta = base_meta(spec, self.name, cfg.to_dict(), {"shapes": shapes})
            return Trace.from_arrays(trace_arrays, meta)
        return capture_train(cfg, shapes, spec, self.name, rng)


def capture_train(
    cfg: DecoderConfig, shapes: list[tuple[int, int]], spec: TraceSpec, name: str, rng: np.random.Generator
) -> Trace:
    """Traces ``len(shapes)`` AdamW training steps of ``DecoderLM(cfg)`` on the meta device."""
    with torch.device("meta"):
        model = DecoderLM(cfg).to(cfg.torch_dtype)
    if cfg.mlp == "moe":
        model.set_router(make_router(cfg, rng))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, foreach=True)
    rec, registry, state = AccessRecorder(cfg.n_layers), Registry(), TrainStepState()
    layers = register_params(model, rec, registry, decoder_param_layer(cfg.n_layers))
    with rec:
        for it, (batch, seq) in enumerate(shapes):
            rec.iteration = it
            tokens = torch.empty((batch, seq), dtype=torch.long, device="meta")
            labels = torch.empty((batch, seq), dtype=torch.long, device="meta")
            registry.add(rec.uid(tokens), Kind.INPUT, 0)
            registry.add(rec.uid(labels), Kind.INPUT, cfg.n_layers + 1)
            rec.phase = Phase.FORWARD
            logits = model(tokens)
            loss = F.cross_entropy(logits.view(-1, cfg.vocab_size).float(), labels.view(-1))
            del logits, tokens, labels
            rec.phase = Phase.BACKWARD
            loss.backward()
            del loss
            state.register_grads(model, rec, registry, layers)
            rec.phase = Phase.OPTIMIZER
            opt.step()
            state.register_optimizer_state(model, opt, rec, registry, layers)
            opt.zero_grad(set_to_none=True)
    rec.close()
    meta = base_meta(spec, name, cfg.to_dict(), {"shapes": shapes})
    return build_trace(rec, registry, meta)
