"""Base models for the LLM policy: named Mistral-architecture presets built offline, and their pretraining.

``python -m training.llm_base build --preset small --out DIR`` trains a word-level tokenizer on the prompt
vocabulary with ``tokenizers`` and initialises a ``MistralForCausalLM`` from a ``MistralConfig`` (seeded);
``python -m training.llm_base pretrain --base DIR --labels FILE.jsonl --steps N`` trains all its weights on
teacher labels (next-token loss on the completion), so that a later LoRA fine-tune starts from a meaningful base.
Everything is deterministic under ``--seed`` on one machine and works with ``HF_HUB_OFFLINE=1``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@dataclass(frozen=True)
class BasePreset:
    """Dimensions of a Mistral-architecture base model."""

    hidden: int
    layers: int
    heads: int
    kv_heads: int
    ff: int


PRESETS = {
    "tiny": BasePreset(hidden=64, layers=2, heads=4, kv_heads=2, ff=128),
    "small": BasePreset(hidden=128, layers=3, heads=4, kv_heads=2, ff=384),
    # half of small's compute per token, for batched CPU inference (4-bit blocks need widths that are multiples of 64)
    "fast": BasePreset(hidden=128, layers=2, heads=4, kv_heads=2, ff=256),
    # the real model's dimensions (random init; for a GPU check, far too large to train here)
    "mistral-7b": BasePreset(hidden=4096, layers=32, heads=32, kv_heads=8, ff=14336),
}


def build_tokenizer():
    """A word-level tokenizer whose vocabulary is every prompt word (trained with ``tokenizers``)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from agents.prompt import PROMPT_VERSION, SPECIAL_TOKENS, vocabulary

    tok = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    words = vocabulary(PROMPT_VERSION)
    trainer = trainers.WordLevelTrainer(special_tokens=list(SPECIAL_TOKENS), min_frequency=1, vocab_size=len(words) + 8)
    tok.train_from_iterator([" ".join(words)], trainer=trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>", padding_side="right"
    )


def build_base(preset: str, out: str | Path, seed: int = 0, device: str = "cpu", dtype: str = "float32") -> Path:
    """Writes a freshly initialised base model + tokenizer (safetensors) to ``out``.

    Args:
        device: Where the weights are initialised (``cuda`` makes a 7B-dimension model in seconds).
        dtype: ``float32`` or ``bfloat16`` (the dtype of the saved weights).
    """
    import torch
    from transformers import MistralConfig, MistralForCausalLM

    if preset not in PRESETS:
        raise ValueError(f"unknown base preset {preset!r}; valid: {', '.join(PRESETS)}")
    p = PRESETS[preset]
    tokenizer = build_tokenizer()
    config = MistralConfig(
        vocab_size=len(tokenizer),
        hidden_size=p.hidden,
        intermediate_size=p.ff,
        num_hidden_layers=p.layers,
        num_attention_heads=p.heads,
        num_key_value_heads=p.kv_heads,
        max_position_embeddings=1024,
        sliding_window=None,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    with torch.device(device):
        model = MistralForCausalLM(config).to(getattr(torch, dtype))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    from agents.prompt import PROMPT_VERSION

    meta = {"preset": preset, **asdict(p), "seed": seed, "prompt_version": PROMPT_VERSION}
    (out / "tensorcache_base.json").write_text(json.dumps(meta, indent=2))
    return out


def completion_batches(rows: list[dict], tokenizer, batch: int, rng: np.random.Generator):
    """Endless shuffled batches of (input_ids, attention_mask, labels) with the loss on the completion only."""
    import torch

    enc = []
    for r in rows:
        p = tokenizer(r["prompt"]).input_ids
        # the completion ends with EOS, exactly as trl's SFTTrainer formats it for the LoRA stage
        full = tokenizer(r["prompt"] + r["completion"] + tokenizer.eos_token).input_ids
        enc.append((full, len(p)))
    while True:
        order = rng.permutation(len(enc))
        for i in range(0, len(order) - batch + 1, batch):
            chunk = [enc[j] for j in order[i : i + batch]]
            width = max(len(f) for f, _ in chunk)
            ids = torch.full((batch, width), tokenizer.pad_token_id, dtype=torch.long)
            att = torch.zeros((batch, width), dtype=torch.long)
            lab = torch.full((batch, width), -100, dtype=torch.long)
            for b, (f, n_prompt) in enumerate(chunk):
                ids[b, : len(f)] = torch.tensor(f)
                att[b, : len(f)] = 1
                lab[b, n_prompt : len(f)] = torch.tensor(f[n_prompt:])
            yield ids, att, lab


def pretrain(base: str | Path, labels: str | Path, steps: int, lr: float = 1e-3, batch: int = 32, seed: int = 0) -> dict:
    """Full-parameter training of ``base`` on teacher labels (in place); returns loss statistics."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from training.make_labels import read_labels

    random.seed(seed)
    torch.manual_seed(seed)
    rows = read_labels(labels)
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 50) * max(0.05, 1 - s / max(steps, 1)))
    batches = completion_batches(rows, tokenizer, min(batch, len(rows)), np.random.default_rng(seed))
    losses = []
    t0 = time.perf_counter()
    for step in range(steps):
        ids, att, lab = next(batches)
        loss = model(input_ids=ids, attention_mask=att, labels=lab).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        losses.append(float(loss.detach()))
        if step % 100 == 0 or step == steps - 1:
            print(f"pretrain step {step}: loss {np.mean(losses[-100:]):.4f}", flush=True)
    model.save_pretrained(base, safe_serialization=True)
    stats = {
        "steps": steps,
        "first_loss": losses[0],
        "last_loss": float(np.mean(losses[-50:])),
        "seconds": time.perf_counter() - t0,
    }
    meta_path = Path(base) / "tensorcache_base.json"
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    meta["pretrain"] = {**stats, "labels": str(labels), "lr": lr, "batch": batch, "seed": seed}
    meta_path.write_text(json.dumps(meta, indent=2))
    return stats


def main(argv: list[str] | None = None) -> int:
    from agents.llm import require_llm

    p = argparse.ArgumentParser(prog="tensorcache-llm-base", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="tokenizer + randomly initialised base model")
    b.add_argument("--preset", default="small", help=f"one of: {', '.join(PRESETS)}")
    b.add_argument("--out", required=True)
    b.add_argument("--seed", type=int, default=0)
    t = sub.add_parser("pretrain", help="full-parameter training on teacher labels")
    t.add_argument("--base", required=True)
    t.add_argument("--labels", required=True, help="labels JSONL (training.make_labels)")
    t.add_argument("--steps", type=int, default=1000)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    try:
        require_llm()
        if args.command == "build":
            print(f"wrote {build_base(args.preset, args.out, args.seed)}")
        else:
            print(json.dumps(pretrain(args.base, args.labels, args.steps, args.lr, args.batch, args.seed)))
    except (ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
