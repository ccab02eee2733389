"""Fine-tune the LLM eviction policy: 4-bit NF4 base + LoRA, supervised on teacher labels with trl's SFTTrainer.

``python -m training.train_llm --base PATH_OR_PRESET --labels DIR [options]`` (``--help`` lists every field).
``--base`` is a local Hugging Face model directory (e.g. Mistral-7B weights you have) or a preset of
:mod:`training.llm_base` (``tiny``, ``small``), which is built offline and pretrained on the labels first. The
labels directory holds ``train.jsonl`` and ``validation.jsonl`` from :mod:`training.make_labels`.

The run directory ``runs/llm__{exp_name}__{seed}__{unix_time}/`` gets ``config.json``, TensorBoard events in
``tb/`` (``train/loss``, ``train/mean_token_accuracy``, ``eval/top1_agreement`` with the teacher on validation
decisions, ``eval/normalized_score`` on validation traces), trainer checkpoints in ``checkpoints/`` (``--resume
RUN_DIR`` continues the latest) and the final LoRA adapter (safetensors) in ``adapter/``. The loss is on the
completion (the candidate identifier) only. Compute dtype: float32 on CPU, bfloat16 on CUDA.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from training.seeding import seed_everything

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class LLMConfig:
    """Configuration of one LLM fine-tuning run (every field is a CLI flag)."""

    base: str = "small"
    """Local model directory, or a base preset built and pretrained in the run directory: tiny, small, fast
    (training/llm_base.py; mistral-7b has the real dimensions, for a GPU)."""
    labels: str = "artifacts/labels"
    """Directory with train.jsonl and validation.jsonl (python -m training.make_labels)."""
    exp_name: str = "llm"
    """Experiment name (part of the run directory name)."""
    seed: int = 0
    """Seed of python, numpy, torch, data order and the preset base's initialisation."""
    load_in_4bit: bool = True
    """Load the base in 4-bit NF4 (bitsandbytes) and train LoRA on top (QLoRA)."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (scale = alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA path."""
    target_modules: tuple[str, ...] = LORA_TARGETS
    """Linear layers that get LoRA adapters."""
    max_steps: int = 400
    """LoRA optimisation steps."""
    learning_rate: float = 2e-4
    """Learning rate of the LoRA stage (cosine schedule, short warm-up)."""
    batch_size: int = 16
    """Sequences per step (LoRA stage and preset pretraining)."""
    max_length: int = 512
    """Longest tokenised prompt + completion kept."""
    pretrain_steps: int = 1500
    """Full-parameter steps on the train labels for a preset base (ignored for a model directory)."""
    pretrain_lr: float = 1e-3
    """Learning rate of the preset pretraining."""
    eval_steps: int = 100
    """Validation (agreement and normalized score) every this many steps (0 = only at the end)."""
    eval_records: int = 400
    """Validation decisions scored for top-1 agreement."""
    eval_instances: int = 1
    """Validation traces replayed for the normalized score (smallest first; 0 = skip)."""
    save_steps: int = 100
    """Trainer checkpoint interval (steps)."""
    threads: int = 1
    """torch CPU threads."""
    runs_dir: str = "runs"
    """Parent directory of run directories."""
    resume: str | None = None
    """Run directory to continue from its latest checkpoint."""
    k: int = 8
    """Candidates per decision (must match the labels)."""
    candidates: Literal["lru", "mixed", "schedule"] = "schedule"
    """Candidate rule of the labels (as make_labels wrote them)."""


def top1_agreement(policy, rows: list[dict]) -> tuple[float, float]:
    """(fraction of decisions where the policy picks the teacher's candidate, chance level)."""
    hits = [int(np.argmax(policy.scores(r["prompt"], r["n_candidates"]))) == r["label"] for r in rows]
    return float(np.mean(hits)), float(np.mean([1.0 / r["n_candidates"] for r in rows]))


def first_candidate_agreement(rows: list[dict]) -> float:
    """Agreement of always evicting candidate 0 (with ``mixed`` candidates: the next-use predictor's choice)."""
    return float(np.mean([r["label"] == 0 for r in rows]))


def validation_score(policy, suite: str, n_instances: int) -> float:
    """Mean normalized byte score of ``policy`` on the ``n_instances`` shortest validation traces."""
    from envs.benchmarks import get_suite
    from eval.evaluate import evaluate

    insts = sorted(get_suite(suite).instances("validation"), key=lambda i: len(i.prepared.tid) * (1 - i.headroom))
    rows = evaluate(policy, instances=insts[:n_instances]).rows
    scores = [r["norm_byte_score"] for r in rows]
    return float(np.nanmean(scores)) if scores else float("nan")


def check_labels_match(cfg: LLMConfig, labels: Path, prompt_version: int | None = None) -> None:
    """Refuses labels made for another candidate count, rule or (given) prompt version (the manifest records
    all three)."""
    try:
        manifest = json.loads((labels / "manifest.json").read_text())
        made = manifest["config"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ValueError(f"{labels}/manifest.json is missing or unreadable (make the labels with training.make_labels)") from None
    if made.get("k") != cfg.k or made.get("candidates") != cfg.candidates:
        raise ValueError(
            f"--k {cfg.k} --candidates {cfg.candidates} do not match the labels in {labels} "
            f"(k={made.get('k')}, candidates={made.get('candidates')})"
        )
    if prompt_version is not None:
        found = manifest.get("prompt_version")
        if found != prompt_version:
            raise ValueError(
                f"the labels in {labels} hold prompt version {found} but the base model reads version {prompt_version}; "
                "make the labels again with training.make_labels"
            )


def base_directory(cfg: LLMConfig, run_dir: Path) -> Path:
    """Where the run's base model lives: ``run_dir/base`` for a preset (built there on first use), else ``--base``."""
    from training.llm_base import PRESETS

    return run_dir / "base" if cfg.base in PRESETS else Path(cfg.base)


def resolve_base(cfg: LLMConfig, run_dir: Path) -> Path:
    """The base model directory (building and pretraining a preset inside the run directory)."""
    from training.llm_base import PRESETS, build_base, pretrain

    base = base_directory(cfg, run_dir)
    if cfg.base in PRESETS:
        if not (base / "model.safetensors").is_file():
            build_base(cfg.base, base, cfg.seed)
            if cfg.pretrain_steps:
                pretrain(base, Path(cfg.labels) / "train.jsonl", cfg.pretrain_steps, cfg.pretrain_lr, cfg.batch_size, cfg.seed)
        return base
    if not base.is_dir():
        raise ValueError(f"--base {cfg.base}: neither a model directory nor a preset ({', '.join(PRESETS)})")
    return base


def load_for_training(base: Path, cfg: LLMConfig):
    """Tokenizer and the (optionally 4-bit) base model with LoRA adapters attached."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    from agents.llm import load_causal_lm

    tokenizer, model = load_causal_lm(base, cfg.load_in_4bit)
    if cfg.load_in_4bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.target_modules),
        task_type="CAUSAL_LM",
    )
    return tokenizer, get_peft_model(model, lora)


def train(cfg: LLMConfig) -> Path:
    """Runs (or resumes) a fine-tuning run; returns the run directory."""
    from agents.llm import require_llm

    require_llm()
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from agents.llm import LLMPolicy, base_prompt_version
    from agents.prompt import PROMPT_VERSION
    from training.make_labels import read_labels

    if cfg.resume:
        run_dir = Path(cfg.resume)
        if not (run_dir / "config.json").is_file():
            raise ValueError(f"--resume {run_dir}: no config.json (not a run directory?)")
        known = {f.name for f in dataclasses.fields(LLMConfig)}
        saved = {k: v for k, v in json.loads((run_dir / "config.json").read_text()).items() if k in known}
        saved["target_modules"] = tuple(saved["target_modules"])
        cfg = LLMConfig(**{**saved, "resume": cfg.resume, "max_steps": max(cfg.max_steps, saved["max_steps"])})
    else:
        run_dir = Path(cfg.runs_dir) / f"llm__{cfg.exp_name}__{cfg.seed}__{int(time.time())}"
        run_dir.mkdir(parents=True, exist_ok=False)
        (run_dir / "config.json").write_text(json.dumps(dataclasses.asdict(cfg), indent=2))
    seed_everything(cfg.seed, cfg.threads)
    train_rows = read_labels(Path(cfg.labels) / "train.jsonl")
    val_rows = read_labels(Path(cfg.labels) / "validation.jsonl")
    base_dir = base_directory(cfg, run_dir)
    prompt_version = base_prompt_version(base_dir) if base_dir.is_dir() else PROMPT_VERSION  # a preset not built yet
    check_labels_match(cfg, Path(cfg.labels), prompt_version)
    rng = np.random.default_rng(cfg.seed)
    val_subset = [val_rows[i] for i in sorted(rng.permutation(len(val_rows))[: cfg.eval_records])]
    base = resolve_base(cfg, run_dir)
    tokenizer, model = load_for_training(base, cfg)
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in train_rows])
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tb")
    args = SFTConfig(
        output_dir=str(run_dir / "checkpoints"),
        max_steps=cfg.max_steps,
        per_device_train_batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=min(20, cfg.max_steps // 10),
        logging_steps=10,
        save_steps=cfg.save_steps,
        save_total_limit=2,
        report_to=["tensorboard"],
        gradient_checkpointing=False,
        use_cpu=not torch.cuda.is_available(),
        seed=cfg.seed,
        data_seed=cfg.seed,
        max_length=cfg.max_length,
        completion_only_loss=True,
        dataloader_num_workers=0,
        disable_tqdm=not sys.stderr.isatty(),
    )

    class Validation(TrainerCallback):
        """Logs eval/top1_agreement and eval/normalized_score every ``eval_steps`` and at the end."""

        trainer = None

        def run(self, state) -> None:
            policy = LLMPolicy(self.trainer.model, tokenizer, cfg.k, cfg.candidates, prompt_version=prompt_version)
            self.trainer.model.eval()
            agree, chance = top1_agreement(policy, val_subset)
            logs = {
                "eval_top1_agreement": agree,
                "eval_top1_chance": chance,
                "eval_top1_first": first_candidate_agreement(val_subset),
            }
            if cfg.eval_instances:
                logs["eval_normalized_score"] = validation_score(policy, "tcb-v2", cfg.eval_instances)
                logs["eval_ms_per_decision"] = 1e3 * float(np.median(policy.decision_seconds or [0.0]))
            self.trainer.model.train()
            self.trainer.log(logs)
            history = run_dir / "validation.jsonl"
            with history.open("a") as fh:
                fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

        def on_step_end(self, args, state, control, **kwargs):
            if cfg.eval_steps and state.global_step % cfg.eval_steps == 0 and state.global_step < cfg.max_steps:
                self.run(state)

        def on_train_end(self, args, state, control, **kwargs):
            self.run(state)

    class ProgressLines(TrainerCallback):
        """One timestamped line per logging step (no carriage-return bars off a terminal)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            from envs.io.progress import log_progress

            shown = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in (logs or {}).items())
            log_progress(f"step {state.global_step}/{cfg.max_steps}: {shown}")

    validation = Validation()
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         callbacks=[validation, ProgressLines()])  # fmt: skip
    from transformers.trainer_callback import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # it prints raw dicts; ProgressLines says the same with a time
    validation.trainer = trainer
    checkpoints = sorted((run_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    t0 = time.perf_counter()
    trainer.train(resume_from_checkpoint=str(checkpoints[-1]) if cfg.resume and checkpoints else None)
    trainer.model.save_pretrained(run_dir / "adapter", safe_serialization=True)
    summary = {
        "base": str(base),
        "train_seconds": time.perf_counter() - t0,
        "global_step": trainer.state.global_step,
        "train_records": len(train_rows),
        "log_history": trainer.state.log_history,
    }
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return run_dir


def main(argv: list[str] | None = None) -> int:
    import tyro

    cfg = tyro.cli(LLMConfig, prog="tensorcache-train-llm", args=argv)
    try:
        run_dir = train(cfg)
    except (ImportError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"done: {run_dir}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
