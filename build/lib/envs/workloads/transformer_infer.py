"""Workloads ``transformer-infer`` and ``moe-infer``: LLM serving with a paged KV cache.

A seeded batch of requests (prompt lengths drawn per request) is prefilled one request at a time, then decoded
together for ``iterations`` steps (one token per request per step). K and V live in fixed-size blocks of
``block_tokens`` tokens, one tensor per block per layer, allocated as sequences grow (vLLM's PagedAttention
layout). For ``moe-infer`` (Mixtral), a seeded router picks the top-2 experts of every token, so each decode step
touches a different subset of expert weights: the expert-offloading problem.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from envs.capture import AccessRecorder, Registry, build_trace
from envs.capture.train_state import register_params
from envs.trace import Kind, Phase, Trace
from envs.workloads.decoder_model import PRESETS, DecoderConfig, DecoderLM, PagedKV
from envs.workloads.spec import TraceSpec, WorkloadError, base_meta
from envs.workloads.transformer_train import decoder_param_layer, make_router, resolve_config


@dataclass(frozen=True)
class ServingShape:
    """Seeded request mix: number of concurrent requests and the choices of prompt length."""

    requests: tuple[int, ...]
    prompt: tuple[int, ...]
    block_tokens: int = 16


SERVING = {
    "mistral-7b": ServingShape(requests=(2, 3, 4), prompt=(128, 256, 512, 1024)),
    "gpt2-small": ServingShape(requests=(4, 6, 8), prompt=(64, 128, 256, 512)),
    "mixtral-8x7b": ServingShape(requests=(2, 3, 4), prompt=(64, 128, 256)),
}


class TransformerInfer:
    """Decoder-only LLM inference with a paged KV cache (``transformer-infer``)."""

    name = "transformer-infer"
    family = "decoder transformer, inference"
    description = "prefill + batched decode with a paged KV cache (16-token blocks); seeded request mix"
    methods = ("captured",)
    default_iterations = 8
    moe = False
    has_requests = True

    def presets(self) -> dict[str, DecoderConfig]:
        return {k: v for k, v in PRESETS.items() if (v.mlp == "moe") == self.moe}

    def generate(self, spec: TraceSpec) -> Trace:
        cfg = resolve_config(self.presets(), spec)
        iterations = spec.iterations or self.default_iterations
        return capture_serving(cfg, SERVING[spec.preset], iterations, spec, self.name)


class MoEInfer(TransformerInfer):
    """Mixtral-style mixture-of-experts inference with seeded routing (``moe-infer``)."""

    name = "moe-infer"
    family = "mixture-of-experts transformer, inference"
    description = "Mixtral-style sparse MoE serving: seeded top-2 routing per token, paged KV cache"
    moe = True


def capture_serving(cfg: DecoderConfig, shape: ServingShape, iterations: int, spec: TraceSpec, name: str) -> Trace:
    """Traces prefill of every request and ``iterations`` batched decode steps on the meta device."""
    rng = np.random.default_rng(spec.seed)
    n_req = int(rng.choice(shape.requests))  # drawn even when given, so the prompts drawn next stay the same
    if spec.requests is not None:
        n_req = spec.requests
    prompts = [int(rng.choice(shape.prompt)) for _ in range(n_req)]
    with torch.device("meta"):
        model = DecoderLM(cfg).to(cfg.torch_dtype)
    if cfg.mlp == "moe":
        model.set_router(make_router(cfg, rng))
    rec, registry = AccessRecorder(cfg.n_layers), Registry()
    register_params(model, rec, registry, decoder_param_layer(cfg.n_layers))
    kv = PagedKV(cfg, shape.block_tokens, "meta", lambda t, layer: registry.add(rec.uid(t), Kind.KV_CACHE, layer))
    lengths = list(prompts)
    if cfg.positions == "learned" and max(prompts) + iterations > cfg.max_positions:
        raise WorkloadError(
            f"{spec.preset} has {cfg.max_positions} learned positions; a {max(prompts)}-token prompt plus {iterations} "
            f"decode steps needs {max(prompts) + iterations} (use at most {cfg.max_positions - max(prompts)} iterations)"
        )
    with rec, torch.no_grad():
        rec.phase, rec.iteration = Phase.PREFILL, 0
        for seq, p in enumerate(prompts):
            tokens = torch.empty((1, p), dtype=torch.long, device="meta")
            registry.add(rec.uid(tokens), Kind.INPUT, 0)
            logits = model(tokens, kv=kv, seqs=[seq], starts=[0])
            del logits, tokens
        rec.phase = Phase.DECODE
        for step in range(1, iterations + 1):
            rec.iteration = step
            tokens = torch.empty((n_req, 1), dtype=torch.long, device="meta")
            registry.add(rec.uid(tokens), Kind.INPUT, 0)
            logits = model(tokens, kv=kv, seqs=list(range(n_req)), starts=list(lengths))
            del logits, tokens
            lengths = [n + 1 for n in lengths]
    rec.close()
    extra = {"requests": n_req, "prompt_lengths": prompts, "block_tokens": shape.block_tokens}
    return build_trace(rec, registry, base_meta(spec, name, cfg.to_dict(), extra))
