"""The LLM policy pipeline on a tiny Mistral the code builds itself: labels, prompts, 4-bit LoRA SFT, reload,
env rollout, TensorBoard scalars, and the missing-extra message."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from agents import make_policy
from agents.prompt import PROMPT_VERSIONS, serialize, vocabulary
from envs.sim import prepare, simulate
from envs.trace import Trace
from tests.conftest import make_classic_trace
from training.labels import iter_decisions
from training.make_labels import LabelConfig, read_labels, write_labels


@pytest.fixture(scope="module")
def label_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("labels")
    for split in ("train", "validation"):
        write_labels(LabelConfig(split=split, out=str(out), stride=16, max_instances=1, teacher="belady"))
    return out


@pytest.fixture(scope="module")
def trained_run(label_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from training.train_llm import LLMConfig, train

    rows = read_labels(label_dir / "train.jsonl")[:24]
    tiny = tmp_path_factory.mktemp("tiny-labels")
    for split in ("train", "validation"):
        (tiny / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tiny / "manifest.json").write_text((label_dir / "manifest.json").read_text())
    cfg = LLMConfig(
        base="tiny",
        labels=str(tiny),
        pretrain_steps=40,  # a briefly pretrained base, as the presets get (LoRA on a random base barely moves it)
        pretrain_lr=2e-3,
        max_steps=80,
        learning_rate=5e-3,
        batch_size=8,
        lora_r=16,
        lora_alpha=32,
        eval_steps=40,
        eval_records=24,
        eval_instances=1,
        save_steps=40,
        runs_dir=str(tmp_path_factory.mktemp("runs")),
    )
    return train(cfg)


def test_following_the_labels_reproduces_belady(small_serve_trace: Trace) -> None:
    prepared = prepare(small_serve_trace, "tensor")
    from envs.sim import headroom_capacity

    cap = headroom_capacity(prepared, 0.2)
    n = 0
    for _ in iter_decisions(prepared, cap, 10**6, "lru"):  # K covers every resident: labels = Belady's victims
        n += 1
    assert n > 20
    # replaying the labelled choices is exactly the Belady run
    from agents.heuristics import Belady
    from envs.gym.episode import Episode

    episode = Episode(prepared, cap, k=10**6)
    belady = Belady(episode.oracle)
    assert episode.play(belady.choose).bytes_moved == simulate(prepared, "belady", cap).bytes_moved


def test_label_file_matches_the_oracle_and_its_schema(label_dir: Path) -> None:
    rows = read_labels(label_dir / "validation.jsonl")
    assert rows and all(0 <= r["label"] < r["n_candidates"] <= 8 for r in rows)
    for r in rows:
        # Belady's choice is a candidate with the farthest next use (None = never)
        nu = [np.inf if x is None else x for x in r["next_use"][: r["n_candidates"]]]
        assert nu[r["label"]] == max(nu)
        assert r["completion"] == f" C{r['label']}"
    bad = label_dir / "bad.jsonl"
    bad.write_text('{"schema_version": 99}\n')
    with pytest.raises(ValueError, match="schema version"):
        read_labels(bad)


def test_make_labels_records_teacher_and_version_and_any_executor_writes_the_same(tmp_path: Path) -> None:
    from agents.prompt import PROMPT_VERSION
    from training.train_llm import LLMConfig, check_labels_match

    common = {"split": "validation", "k": 16, "stride": 16, "max_instances": 2, "every": 7, "teacher": "lp-guided"}
    serial = write_labels(LabelConfig(out=str(tmp_path / "serial"), executor="serial", **common))
    pooled = write_labels(LabelConfig(out=str(tmp_path / "pooled"), executor="process", jobs=2, **common))
    assert serial.read_text() and serial.read_text() == pooled.read_text()
    manifest = json.loads((tmp_path / "serial" / "manifest.json").read_text())
    assert manifest["prompt_version"] == PROMPT_VERSION and manifest["config"]["teacher"] == "lp-guided"
    assert {r["prompt_version"] for r in read_labels(serial)} == {PROMPT_VERSION}
    assert len({(r["task"], r["seed"]) for r in read_labels(serial)}) == 2
    cfg = LLMConfig(labels=str(tmp_path / "serial"), k=16)
    check_labels_match(cfg, tmp_path / "serial", PROMPT_VERSION)
    with pytest.raises(ValueError, match=f"prompt version {PROMPT_VERSION} but the base model reads version 2"):
        check_labels_match(cfg, tmp_path / "serial", 2)


def test_prompt_versions_hold_the_same_fields_and_models_keep_theirs(small_serve_trace: Trace) -> None:
    from agents.llm import base_prompt_version
    from envs.gym.episode import Episode
    from envs.sim import headroom_capacity

    prepared = prepare(small_serve_trace, "tensor")
    episode = Episode(prepared, headroom_capacity(prepared, 0.2), k=16, rule="mixed", schedule=True)
    episode.advance()
    view = episode.view
    v2, v3, v4 = serialize(view, 2).split(), serialize(view, 3).split(), serialize(view, 4).split()
    assert set(v4) <= set(vocabulary(4))
    # version 4: every candidate once, with a distinct rank by predicted distance and by size (no ties)
    n = view.n
    for prefix in ("C", "o", "z"):
        assert sorted(w for w in v4 if re.fullmatch(prefix + r"\d+", w)) == sorted(f"{prefix}{j}" for j in range(n))
    dead = v4.count("xd")
    assert len(v4) == 7 + n * 10 - dead + 1  # a dead prediction is one word (xd) instead of two (x, n)
    assert set(v2) <= set(vocabulary(2)) and set(v3) <= set(vocabulary(3))
    assert v2.count(";") == view.n + 1 and ";" not in v3
    assert len(v3) == len(v2) - (view.n + 1) - view.n  # no separators; dirty and iteration flags in one word
    dirty, this_iteration = [w for w in v2 if w in ("d0", "d1")], [w for w in v2 if w in ("i0", "i1")]
    flags2 = [f"{a}{b}" for a, b in zip(dirty, this_iteration, strict=True)]
    assert flags2 == [w for w in v3 if w.startswith("d") and "i" in w]
    with pytest.raises(ValueError, match="prompt version 9"):
        serialize(view, 9)
    shipped = Path(__file__).parent.parent / "eval" / "leaderboard" / "llm" / "base"
    assert base_prompt_version(shipped) in PROMPT_VERSIONS
    without = Episode(prepared, headroom_capacity(prepared, 0.2), k=16, rule="mixed")
    without.advance()
    with pytest.raises(ValueError, match="reads the schedule's predictions"):
        serialize(without.view, 4)


def test_prompt_holds_no_future_information() -> None:
    rng = np.random.default_rng(0)
    prefix = rng.integers(0, 40, size=300)
    sizes = rng.integers(1, 100, size=80)
    a = make_classic_trace(np.concatenate([prefix, rng.integers(0, 40, size=300)]), sizes)
    b = make_classic_trace(np.concatenate([prefix, rng.integers(40, 80, size=300)]), sizes)
    prompts, labels = [], []
    for trace in (a, b):
        prepared = prepare(trace, "classic")
        # a legal rollout policy keeps both runs in the same states up to the divergence point
        decisions = iter_decisions(prepared, 800, 8, "schedule", rollout=make_policy("lru"))
        recs = [(serialize(r.view, 3) + " | " + serialize(r.view), r.label) for r in decisions if r.view.now < 300]
        prompts.append([p for p, _ in recs])
        labels.append([lab for _, lab in recs])
    assert len(prompts[0]) > 10
    assert prompts[0] == prompts[1]  # same past => same prompt
    assert labels[0] != labels[1]  # while the future (and so Belady's label) differs
    words = set(vocabulary())
    assert all(set(p.split(" | ")[1].split()) <= words for p in prompts[0])


@pytest.mark.slow  # QLoRA: trains the tiny 4-bit base (the trained_run fixture)
def test_sft_on_4bit_lora_lowers_the_loss_and_overfits(trained_run: Path) -> None:
    summary = json.loads((trained_run / "summary.json").read_text())
    losses = [h["loss"] for h in summary["log_history"] if "loss" in h]
    # the tiny base's output logits are small (tied 64-wide embeddings), so the loss falls slowly in absolute terms
    assert losses[-1] < losses[0] - 0.05
    final = [json.loads(line) for line in (trained_run / "validation.jsonl").read_text().splitlines()][-1]
    assert final["eval_top1_agreement"] >= 0.9  # the 24 training decisions are memorised
    from agents.llm import LLMPolicy
    from training.train_llm import top1_agreement

    rows = read_labels(Path(json.loads((trained_run / "config.json").read_text())["labels"]) / "train.jsonl")
    before, _ = top1_agreement(LLMPolicy.load(trained_run / "base"), rows)
    assert final["eval_top1_agreement"] >= before + 0.2, before  # LoRA, not the short pretraining, fitted them
    cfg = json.loads((trained_run / "config.json").read_text())
    assert cfg["load_in_4bit"] is True


@pytest.mark.slow  # QLoRA: trains the tiny 4-bit base (the trained_run fixture)
def test_adapter_reloads_to_identical_scores_and_drives_the_env(trained_run: Path, small_serve_trace: Trace) -> None:
    from agents.llm import LLMPolicy
    from agents.rollout import run_policy
    from envs.sim import headroom_capacity

    rows = read_labels(Path(json.loads((trained_run / "config.json").read_text())["labels"]) / "train.jsonl")[:5]
    p1 = LLMPolicy.load(trained_run / "base", trained_run / "adapter")
    p2 = LLMPolicy.load(trained_run / "base", trained_run / "adapter")
    for r in rows:
        assert np.array_equal(p1.scores(r["prompt"], r["n_candidates"]), p2.scores(r["prompt"], r["n_candidates"]))
    # the single-forward scoring equals the general batched path
    p2.single_token = False
    r = rows[0]
    np.testing.assert_allclose(p1.scores(r["prompt"], r["n_candidates"]), p2.scores(r["prompt"], r["n_candidates"]), atol=1e-4)
    prepared = prepare(small_serve_trace, "tensor")
    cap = headroom_capacity(prepared, 0.6)
    run = run_policy(prepared, p1, cap)
    assert run.decisions > 0 and run.result.n_req == simulate(prepared, "lru", cap).n_req
    assert len(p1.decision_seconds) == run.decisions
    # lockstep batched decisions over several traces choose what one-at-a-time decisions choose
    from agents.rollout import run_policy_batched

    jobs = [(prepared, cap, 0), (prepared, headroom_capacity(prepared, 0.3), 1)]
    batched = run_policy_batched(jobs, p1)
    single = [run_policy(pp, p1, c, seed=sd) for pp, c, sd in jobs]
    assert [b.result for b in batched] == [r.result for r in single]
    # its forward passes run on one torch thread, and the process's own setting is restored after
    import torch

    seen: list[int] = []
    forward = p1.model.forward
    p1.model.forward = lambda *a, **k: (seen.append(torch.get_num_threads()), forward(*a, **k))[1]
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        run_policy(prepared, p1, cap)
        run_policy_batched(jobs, p1)
        assert seen and set(seen) == {1} and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow  # QLoRA: trains the tiny 4-bit base (the trained_run fixture)
def test_word_level_prompt_ids_equal_the_tokenizer_s(trained_run: Path, small_serve_trace: Trace) -> None:
    from tokenizers import normalizers

    from agents.llm import LLMPolicy, word_level_vocabulary
    from envs.gym.episode import Episode
    from envs.sim import headroom_capacity

    policy = LLMPolicy.load(trained_run / "base")
    assert policy._word_ids is not None  # the built-in presets' tokenizer takes the direct path
    prepared = prepare(small_serve_trace, "tensor")
    episode = Episode(prepared, headroom_capacity(prepared, 0.3), k=policy.candidate_k, rule=policy.candidate_rule)
    checked = 0
    while not episode.advance() and checked < 40:
        view = episode.view
        assert policy.encode(view) == policy.tokenizer(serialize(view, policy.prompt_version)).input_ids
        episode.evict(checked % view.n)
        checked += 1
    assert checked == 40
    policy.tokenizer.backend_tokenizer.normalizer = normalizers.Lowercase()  # words could now map elsewhere
    assert word_level_vocabulary(policy.tokenizer) is None


@pytest.mark.slow  # QLoRA: trains the tiny 4-bit base (the trained_run fixture)
def test_the_policy_that_plays_is_the_trained_4bit_base_with_its_lora_unmerged(trained_run: Path) -> None:
    """``from_pretrained`` on the saved directories (the code path a Mistral-7B directory takes): the base is
    NF4-quantized, the adapter stays a separate LoRA branch, and the expanded CPU layers compute exactly what
    bitsandbytes' float32 path (the one QLoRA training ran through) computes."""
    import torch
    from peft import PeftModel
    from peft.tuners.lora import LoraLayer

    from agents.llm import LLMPolicy, expand_nf4_on_cpu, load_causal_lm

    policy = LLMPolicy.load(trained_run / "base", trained_run / "adapter")
    assert policy.meta["quantization"] == "nf4-double-quant"
    _, quantized = load_causal_lm(trained_run / "base", load_in_4bit=True)
    _, expanded = load_causal_lm(trained_run / "base", load_in_4bit=True)
    n_4bit = sum(type(m).__name__ == "Linear4bit" for m in quantized.modules())
    assert n_4bit > 0 and expand_nf4_on_cpu(expanded) == n_4bit
    # the adapter stays a separate branch over the NF4 base (not merged): PEFT's own model, loaded the same way,
    # holds the same base weights, and the inlined LoRA layers score bit for bit what PEFT's layers score
    _, reference = load_causal_lm(trained_run / "base", load_in_4bit=True)
    reference = PeftModel.from_pretrained(reference, str(trained_run / "adapter"), is_trainable=False)
    expand_nf4_on_cpu(reference)
    reference.eval()
    lora = [m for m in reference.modules() if isinstance(m, LoraLayer)]
    inlined = [m for m in policy.model.modules() if type(m).__name__ == "LoraLinear"]
    assert lora and len(inlined) == len(lora) and not any(m.merged for m in lora)
    assert {m.scaling[a] for m in lora for a in m.active_adapters} == {2.0}  # alpha 32 / r 16, folded into B:
    assert all(m.scaling == 1.0 for m in inlined)  # the equality below covers the folded product
    assert all(torch.equal(m.base.weight, expanded.get_submodule(n).weight)
               for n, m in policy.model.named_modules() if type(m).__name__ == "LoraLinear")  # fmt: skip
    rows = read_labels(Path(json.loads((trained_run / "config.json").read_text())["labels"]) / "train.jsonl")[:8]
    ids = policy.tokenizer([r["prompt"] for r in rows], padding=True, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(policy.model(input_ids=ids).logits, reference(input_ids=ids).logits)
    _, full = load_causal_lm(trained_run / "base", load_in_4bit=False)
    torch.manual_seed(0)
    for name, layer in quantized.named_modules():
        if type(layer).__name__ != "Linear4bit":
            continue
        dense = expanded.get_submodule(name)
        # the NF4 values, not the float32 weights they were quantized from
        assert not torch.equal(dense.weight, full.get_submodule(name).weight)
        x = torch.randn(3, layer.in_features)
        layer.train()  # bitsandbytes' float32 dequantize-then-matmul path, as in training
        with torch.no_grad():
            assert torch.equal(layer(x), dense(x))
    base_only = LLMPolicy.load(trained_run / "base")
    assert not any(isinstance(m, LoraLayer) for m in base_only.model.modules())
    with pytest.raises(ValueError, match="no such model directory"):
        LLMPolicy.load(trained_run / "missing")


def test_full_size_check_script_runs_the_7b_code_path_at_tiny_dimensions() -> None:
    """The GPU check script (Mistral-7B dimensions there) runs its every step on a CPU at the tiny preset."""
    from training.llm_base import PRESETS
    from training.llm_full_size_check import FullSizeCheck, run_check

    report = run_check(FullSizeCheck(preset="tiny", decisions=3))
    p = PRESETS["tiny"]
    kv = p.hidden // p.heads * p.kv_heads
    per_layer = 16 * ((p.hidden + p.hidden) * 2 + (p.hidden + kv) * 2 + (p.hidden + p.ff) * 3)  # r = 16
    assert report["linear4bit_layers"] == 7 * p.layers
    assert report["trainable_params"] == per_layer * p.layers  # LoRA only: the 4-bit base is frozen
    assert np.isfinite(report["loss"]) and len(report["choices"]) == 3


@pytest.mark.slow  # QLoRA: trains the tiny 4-bit base (the trained_run fixture)
def test_tensorboard_has_the_named_scalars(trained_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags: set[str] = set()
    for ev in (trained_run / "tb").rglob("events.out.tfevents.*"):
        acc = EventAccumulator(str(ev))
        acc.Reload()
        tags |= set(acc.Tags()["scalars"])
    assert {"train/loss", "train/mean_token_accuracy", "eval/top1_agreement", "eval/normalized_score"} <= tags


def test_missing_llm_extra_gives_one_line_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    from agents.llm import require_llm

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "trl" else real(name, *a))
    with pytest.raises(ImportError, match=r"pip install -e '\.\[llm\]'") as info:
        require_llm()
    assert "\n" not in str(info.value)


def test_core_imports_do_not_pull_llm_libraries() -> None:
    import subprocess
    import sys

    code = "import envs, agents, eval.leaderboard.run, sys; print(any(m in sys.modules for m in ('transformers', 'peft', 'trl')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "False"


class _Planted:
    """A pickle payload: unpickling it would write a file."""

    target = ""

    def __reduce__(self):
        return (Path.write_text, (Path(_Planted.target), "ran"))


@pytest.mark.slow  # QLoRA: trains the tiny 4-bit base (the trained_run fixture)
def test_resume_loads_no_pickle_from_the_run_directory(trained_run: Path, tmp_path: Path) -> None:
    """The HF Trainer's checkpoint files (optimizer.pt, scheduler.pt, rng_state.pth) are pickles; resume reads them
    with torch.load(weights_only=True) and never reads training_args.bin, so a payload planted there is refused,
    not run, and the untouched run resumes."""
    import shutil

    import torch

    from training.train_llm import LLMConfig, train

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (latest,) = sorted((run / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))[-1:]
    _Planted.target = str(tmp_path / "pwned")
    for name in ("rng_state.pth", "optimizer.pt", "scheduler.pt", "training_args.bin"):
        if (latest / name).exists():
            torch.save({"state": _Planted()}, latest / name)
    with pytest.raises(Exception, match=r"(?i)weights.only|unpickl|unsupported global"):
        train(LLMConfig(resume=str(run), max_steps=84))
    assert not (tmp_path / "pwned").exists()
    clean = tmp_path / "clean"
    shutil.copytree(trained_run, clean)
    train(LLMConfig(resume=str(clean), max_steps=84))
    assert json.loads((clean / "summary.json").read_text())["global_step"] == 84
