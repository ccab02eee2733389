"""The full-size LLM path, end to end: ``python -m training.llm_full_size_check --preset mistral-7b --out DIR``.

Builds a randomly initialised base at a preset's dimensions (``mistral-7b``: hidden 4096, 32 layers, 32 heads / 8
KV heads, FFN 14336) and saves it as a Hugging Face directory, then takes it through exactly the code a downloaded
Mistral-7B directory takes: :func:`agents.llm.load_causal_lm` (``from_pretrained``, 4-bit NF4 with double
quantization), LoRA on every attention and MLP projection (:func:`training.train_llm.load_for_training`), one
QLoRA optimisation step on real decision prompts, then the policy (4-bit base, adapter unmerged) choosing victims
in a short replay. Prints one JSON line of timings, parameter counts and peak GPU memory. Made for a machine with a
GPU (on a CPU the 7B step takes hours); ``--preset tiny`` runs the same steps on a CPU in seconds (tested).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass
class FullSizeCheck:
    """Options of the check (every field is a CLI flag)."""

    preset: str = "mistral-7b"
    """Base preset of training.llm_base ('mistral-7b' for the real dimensions, 'tiny' for a CPU smoke run)."""
    out: str | None = None
    """Directory for the saved base (default: a temporary directory, removed afterwards)."""
    decisions: int = 8
    """Decisions of the replay the policy plays after the training step."""
    seed: int = 0
    """Seed of the initialisation and the LoRA step."""


def run_check(cfg: FullSizeCheck) -> dict:
    """Runs the check; returns its measurements."""
    from agents.llm import LLMPolicy, require_llm

    require_llm()
    import torch

    from training.llm_base import PRESETS, build_base, completion_batches
    from training.train_llm import LLMConfig, load_for_training

    if cfg.preset not in PRESETS:
        raise ValueError(f"unknown --preset {cfg.preset!r}; valid: {', '.join(PRESETS)}")
    cuda = torch.cuda.is_available()
    report: dict = {"preset": cfg.preset, "device": torch.cuda.get_device_name(0) if cuda else "cpu"}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(cfg.out or tmp) / f"base-{cfg.preset}"
        t0 = time.perf_counter()
        build_base(cfg.preset, base, cfg.seed, device="cuda" if cuda else "cpu", dtype="bfloat16" if cuda else "float32")
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        report["build_and_save_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        tokenizer, model = load_for_training(base, LLMConfig(base=str(base), load_in_4bit=True))
        report["load_4bit_lora_s"] = time.perf_counter() - t0
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        report["trainable_params"] = int(trainable)
        import bitsandbytes as bnb

        report["linear4bit_layers"] = sum(isinstance(m, bnb.nn.Linear4bit) for m in model.modules())

        rows = _decision_rows(cfg.decisions)
        ids, att, lab = next(completion_batches(rows, tokenizer, min(4, len(rows)), _rng(cfg.seed)))
        dev = next(model.parameters()).device
        opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
        t0 = time.perf_counter()
        loss = model(input_ids=ids.to(dev), attention_mask=att.to(dev), labels=lab.to(dev)).loss
        loss.backward()
        opt.step()
        report["qlora_step_s"] = time.perf_counter() - t0
        report["loss"] = float(loss.detach())
        adapter = base.parent / "adapter"
        model.save_pretrained(adapter, safe_serialization=True)
        del model, opt

        t0 = time.perf_counter()
        policy = LLMPolicy.load(base, adapter)
        report["load_policy_s"] = time.perf_counter() - t0
        choices = []
        t0 = time.perf_counter()
        for r in rows:
            choices.append(int(policy.scores(r["prompt"], r["n_candidates"]).argmax()))
        report["seconds_per_decision"] = (time.perf_counter() - t0) / len(rows)
        report["choices"] = choices
        if cuda:
            report["peak_gpu_gib"] = torch.cuda.max_memory_allocated() / 2**30
    return report


def _rng(seed: int):
    import numpy as np

    return np.random.default_rng(seed)


def _decision_rows(n: int) -> list[dict]:
    """``n`` real decisions (prompt, completion) of a small serving trace, labelled by the lp-guided teacher."""
    from agents.prompt import completion, serialize
    from envs.sim import headroom_capacity, prepare
    from envs.workloads import generate_trace
    from training.labels import iter_decisions

    trace = generate_trace("transformer-infer", preset="gpt2-small", layers=2, iterations=3, seed=0)
    prepared = prepare(trace, "tensor")
    rows = []
    for rec in iter_decisions(prepared, headroom_capacity(prepared, 0.3), 8, "schedule", teacher="lp-guided"):
        rows.append({"prompt": serialize(rec.view), "completion": completion(rec.label), "n_candidates": rec.view.n})
        if len(rows) == n:
            break
    if not rows:
        raise ValueError("the check trace made no eviction decisions")
    return rows


def main(argv: list[str] | None = None) -> int:
    import tyro

    cfg = tyro.cli(FullSizeCheck, prog="python -m training.llm_full_size_check", args=argv)
    try:
        print(json.dumps(run_check(cfg)))
    except (ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
