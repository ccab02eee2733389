"""The LLM eviction policy: a causal language model reads the decision as text and names the victim.

Every candidate is scored by the sum of the log-probabilities of its identifier's tokens after the prompt
(:mod:`agents.prompt`); the best-scored candidate is evicted. When every identifier is a single token (the
word-level tokenizer of the built-in presets) one forward pass of the prompt scores all candidates; otherwise the
K prompt+identifier sequences go through the model as one padded batch. At inference the base is loaded in 4-bit
NF4 and the LoRA adapter stays on top, unmerged, exactly as it was trained (:func:`load_causal_lm`).
The heavy libraries (transformers, peft) are imported only here and only when needed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Policy

if TYPE_CHECKING:
    from envs.gym.features import DecisionView

LLM_EXTRA_HINT = "pip install -e '.[llm]'"


def require_llm() -> None:
    """Raises a one-line ImportError naming the install command when the ``llm`` extra is missing."""
    import importlib.util

    missing = [m for m in ("transformers", "peft", "trl", "bitsandbytes") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"the LLM policy needs the 'llm' extra (missing: {', '.join(missing)}); run: {LLM_EXTRA_HINT}")
    _quiet_llm_libraries()


def _quiet_llm_libraries() -> None:
    """Silences the LLM stack's noise that says nothing about this run: bitsandbytes' notice that an optional CPU
    kernel package is absent, transformers' weight-loading progress bars, and deprecation warnings the libraries
    raise about their own internals."""
    import logging
    import warnings

    logging.getLogger("bitsandbytes.backends.cpu.ops").setLevel(logging.ERROR)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars, one per model load, in every log
    for module in ("transformers", "trl", "peft", "accelerate"):
        for category in (FutureWarning, DeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=rf"{module}(\..*)?$")


class LLMPolicy(Policy):
    """Greedy policy of a causal LM over :func:`agents.prompt.serialize` prompts.

    Args:
        model: A ``transformers`` causal LM (eval mode).
        tokenizer: Its tokenizer.
        k: Candidates per decision (the prompt format supports up to 64).
        rule: Candidate rule of the decisions (``lru``, ``mixed`` or ``schedule``).
        max_batch: Most decisions per forward pass in :meth:`choose_batch` (on a CPU, passes of a few 100-to-150-token
            prompts cost the least per decision; larger ones spill the caches).
        threads: torch threads of its forward passes (set around each call and restored after; None: whatever the
            process uses). One by default: these passes are small, and on a loaded 2-core machine every torch thread
            ran them about 9× slower than one.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        k: int = 16,
        rule: str = "mixed",
        name: str = "llm",
        meta: dict | None = None,
        prompt_version: int | None = None,
        max_batch: int = 4,
        threads: int | None = 1,
    ):
        import torch

        from agents.prompt import PROMPT_VERSION, SCHEDULE_VERSIONS

        self.model, self.tokenizer = model, tokenizer
        self.candidate_k, self.candidate_rule, self.name = k, rule, name
        self.prompt_version = PROMPT_VERSION if prompt_version is None else int(prompt_version)
        self.uses_schedule = self.prompt_version in SCHEDULE_VERSIONS  # its prompts read the schedule's predictions
        self.meta = {**(meta or {}), "prompt_version": self.prompt_version}
        self._torch = torch
        from agents.prompt import completion

        self._completion_ids = [tokenizer(completion(j), add_special_tokens=False).input_ids for j in range(k)]
        self.single_token = all(len(c) == 1 for c in self._completion_ids)
        self._identifier_ids = torch.tensor([c[0] for c in self._completion_ids]) if self.single_token else None
        self._word_ids = word_level_vocabulary(tokenizer)
        self.decision_seconds: list[float] = []
        self.batched = self.single_token
        self.max_batch = max_batch
        self.threads = threads

    @contextmanager
    def _torch_threads(self) -> Iterator[None]:
        """Runs the block with :attr:`threads` torch threads, restoring the process's setting after."""
        torch, want = self._torch, self.threads
        before = torch.get_num_threads()
        if want is None or want == before:
            yield
            return
        torch.set_num_threads(want)
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.candidate_k, "candidates": self.candidate_rule, **self.meta}

    def encode(self, view: DecisionView) -> list[int]:
        """The token ids of the decision's prompt: ``tokenizer(serialize(view)).input_ids``, computed from the
        prompt's words directly when the tokenizer is word-level (the built-in presets; see
        :func:`word_level_vocabulary`), which skips building and splitting the string."""
        from agents.prompt import prompt_words, serialize

        if self._word_ids is None:
            return self.tokenizer(serialize(view, self.prompt_version)).input_ids
        ids, unk = self._word_ids
        return [self.tokenizer.bos_token_id, *(ids.get(w, unk) for w in prompt_words(view, self.prompt_version))]

    def scores(self, prompt: str, n: int) -> np.ndarray:
        """Sum of identifier-token log-probabilities of candidates 0..n-1 after ``prompt``."""
        return self._scores_of_ids(self.tokenizer(prompt).input_ids, n)

    def _scores_of_ids(self, prompt_ids: list[int], n: int) -> np.ndarray:
        torch = self._torch
        tok = self.tokenizer
        with torch.no_grad():
            if self.single_token:
                logits = self.model(input_ids=torch.tensor([prompt_ids]), logits_to_keep=1).logits[0, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                return logp[self._identifier_ids[:n]].double().numpy()
            seqs = [prompt_ids + self._completion_ids[j] for j in range(n)]
            width = max(len(s) for s in seqs)
            pad = tok.pad_token_id if tok.pad_token_id is not None else 0
            ids = torch.full((n, width), pad, dtype=torch.long)
            att = torch.zeros((n, width), dtype=torch.long)
            for i, s in enumerate(seqs):
                ids[i, : len(s)] = torch.tensor(s)
                att[i, : len(s)] = 1
            logp = torch.log_softmax(self.model(input_ids=ids, attention_mask=att).logits.float(), dim=-1)
            out = np.zeros(n)
            for i in range(n):
                for pos, t in enumerate(self._completion_ids[i]):
                    out[i] += float(logp[i, len(prompt_ids) + pos - 1, t])
            return out

    def choose(self, view: DecisionView) -> int:
        t0 = time.perf_counter()
        with self._torch_threads():
            s = self._scores_of_ids(self.encode(view), view.n)
        self.decision_seconds.append(time.perf_counter() - t0)
        return int(np.argmax(s))

    def choose_batch(self, views: list[DecisionView]) -> list[int]:
        """Padded forward passes of at most :attr:`max_batch` decisions of several traces, grouped by prompt length
        so that little of each pass is padding (single-token identifiers only)."""
        if not self.single_token or len(views) == 1:
            return [self.choose(v) for v in views]
        t0 = time.perf_counter()
        encoded = [self.encode(v) for v in views]
        order = sorted(range(len(views)), key=lambda i: len(encoded[i]))
        out = [0] * len(views)
        with self._torch_threads():
            for start in range(0, len(order), self.max_batch):
                group = order[start : start + self.max_batch]
                choices = self._forward_choices([encoded[i] for i in group], [views[i].n for i in group])
                for i, choice in zip(group, choices, strict=True):
                    out[i] = choice
        per = (time.perf_counter() - t0) / len(views)
        self.decision_seconds.extend([per] * len(views))
        return out

    def _forward_choices(self, encoded: list[list[int]], n_candidates: list[int]) -> list[int]:
        torch = self._torch
        width = max(len(e) for e in encoded)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(encoded), width), pad, dtype=torch.long)
        for i, e in enumerate(encoded):
            ids[i, : len(e)] = torch.tensor(e)
        # Right padding needs no attention mask in a causal model: a real position never attends to the padding
        # after it. Logits are computed only at the positions where some prompt ends.
        ends = sorted({len(e) - 1 for e in encoded})
        column = {end: c for c, end in enumerate(ends)}
        with torch.no_grad():
            logits = self.model(input_ids=ids, logits_to_keep=torch.tensor(ends)).logits
            last = logits[torch.arange(len(encoded)), torch.tensor([column[len(e) - 1] for e in encoded])].float()
            logp = torch.log_softmax(last, dim=-1)[:, self._identifier_ids].numpy()
        return [int(np.argmax(logp[i, :n])) for i, n in enumerate(n_candidates)]

    @classmethod
    def load(
        cls,
        base: str | Path,
        adapter: str | Path | None = None,
        k: int | None = None,
        rule: str | None = None,
        name: str = "llm",
        load_in_4bit: bool = True,
    ) -> LLMPolicy:
        """Loads a base model directory (safetensors only) the way it was trained: quantized to 4-bit NF4 with
        the LoRA adapter kept on top (not merged), so the policy that plays is the model that was trained.
        ``k`` and ``rule`` default to what its prompt version was made for
        (:func:`agents.prompt.default_candidates`).

        Raises:
            ImportError: One line naming the install command, without the ``llm`` extra.
            ValueError: When a directory is missing.
        """
        tokenizer, model = load_causal_lm(base, load_in_4bit)
        if adapter is not None:
            from peft import PeftModel

            if not Path(adapter).is_dir():
                raise ValueError(f"{adapter}: no such adapter directory")
            model = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
        if load_in_4bit:
            expand_nf4_on_cpu(model)
        model.eval()
        if adapter is not None and model.device.type == "cpu":  # on CUDA the 4-bit kernels and PEFT's layers stay
            model = inline_lora(model)
        meta = {
            "base": str(base),
            "adapter": None if adapter is None else str(adapter),
            "quantization": QUANTIZATION[load_in_4bit],
        }
        from agents.prompt import default_candidates

        version = base_prompt_version(base)
        default_k, default_rule = default_candidates(version)
        return cls(model, tokenizer, default_k if k is None else k, default_rule if rule is None else rule, name, meta,
                   version)  # fmt: skip


def base_prompt_version(base: str | Path) -> int:
    """The prompt version a base model directory was built for (``tensorcache_base.json``); the current version
    for a directory without one (e.g. downloaded Mistral-7B weights).

    Raises:
        ValueError: When the recorded version is not one :func:`agents.prompt.serialize` writes.
    """
    import json

    from agents.prompt import PROMPT_VERSION, check_version

    meta_path = Path(base) / "tensorcache_base.json"
    if not meta_path.is_file():
        return PROMPT_VERSION
    try:
        version = json.loads(meta_path.read_text()).get("prompt_version", PROMPT_VERSION)
    except (OSError, ValueError, AttributeError):
        raise ValueError(f"{meta_path}: not a readable JSON object") from None
    try:
        check_version(version)
    except ValueError as exc:
        raise ValueError(f"{meta_path}: {exc}") from None
    return int(version)


def expand_nf4_on_cpu(model: Any) -> int:
    """Replaces every bitsandbytes 4-bit linear layer on the CPU by a float32 linear layer holding its
    dequantized NF4 weights, once, instead of on every forward pass. The weights are the 4-bit model's values
    exactly (the NF4 code book times the double-quantized block scales, decoded as bitsandbytes decodes them);
    LoRA adapters stay separate, unmerged. The result equals bitsandbytes' float32 path bit for bit, the one
    QLoRA training runs through (``tests/test_llm.py``), at about twice its speed. bitsandbytes' eval-mode kernel
    on CPUs with AVX512-BF16 would instead round the products to bfloat16, so its scores would depend on the
    machine. Returns the number of layers replaced (0 on CUDA, where the 4-bit kernels stay).
    """
    import torch

    try:
        import bitsandbytes as bnb
    except ImportError:
        return 0
    ops = torch.ops.bitsandbytes
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, bnb.nn.Linear4bit) or child.weight.device.type != "cpu":
                continue
            qs = child.weight.quant_state
            absmax = qs.absmax  # as bitsandbytes' CPU matmul decodes it: nested scales are 8-bit blockwise codes
            if qs.nested:
                absmax = ops.dequantize_blockwise.default(
                    absmax, qs.state2.absmax, qs.state2.code, qs.state2.blocksize, torch.float32
                )
                absmax = absmax + qs.offset
            packed = child.weight.data.view(-1, 1)
            weight = ops.dequantize_4bit.default(packed, absmax, qs.blocksize, qs.quant_type, qs.shape, torch.float32)
            dense = torch.nn.Linear(child.in_features, child.out_features, bias=child.bias is not None)
            dense.weight = torch.nn.Parameter(weight.reshape(child.out_features, child.in_features), requires_grad=False)
            if child.bias is not None:
                dense.bias = torch.nn.Parameter(child.bias.data.to(torch.float32), requires_grad=False)
            setattr(parent, name, dense)
            replaced += 1
    return replaced


def word_level_vocabulary(tokenizer: Any) -> tuple[dict[str, int], int] | None:
    """``(word -> id, unknown id)`` when ``tokenizer`` maps a text to its beginning-of-sequence id followed by one
    id per whitespace-separated word (a fast tokenizer with a ``WordLevel`` model, a ``WhitespaceSplit``
    pre-tokenizer, no normalizer and a template that only prepends ``bos``), else None. For such a tokenizer
    ``[bos, *(vocab.get(w, unk) for w in text.split())]`` is exactly its ``input_ids`` (``tests/test_llm.py``)."""
    import json

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None or tokenizer.bos_token_id is None:
        return None
    spec = json.loads(backend.to_str())
    model, post = spec.get("model") or {}, spec.get("post_processor") or {}
    bos_first = [{"SpecialToken": {"id": tokenizer.bos_token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]
    if (
        model.get("type") != "WordLevel"
        or spec.get("pre_tokenizer") != {"type": "WhitespaceSplit"}
        or spec.get("normalizer") is not None
        or post.get("type") != "TemplateProcessing"
        or post.get("single") != bos_first
        or any(not t.get("special") for t in spec.get("added_tokens") or [])
    ):
        return None
    vocab = dict(model["vocab"])
    return vocab, vocab[model["unk_token"]]


def _lora_linear_class():
    import torch

    class LoraLinear(torch.nn.Module):
        """A base linear layer plus its LoRA adapter kept separate: ``base(x) + B(A(x)) * scaling``, what PEFT's
        LoRA layer computes in eval mode, without its per-call bookkeeping.

        A power-of-two ``scaling`` (PEFT's default ``lora_alpha / r`` is usually one) is folded into a copy of B's
        weights: scaling a binary float by a power of two is exact, so every product and partial sum of the
        matrix product scales exactly and ``(sB)(A(x)) == s * B(A(x))`` bit for bit. The sum is formed in place
        (addition commutes exactly).
        """

        def __init__(self, base: torch.nn.Module, lora_a: torch.nn.Module, lora_b: torch.nn.Module, scaling: float):
            super().__init__()
            self.base, self.lora_a, self.lora_b, self.scaling = base, lora_a, lora_b, scaling
            if lora_b.bias is None and scaling > 0 and math.frexp(scaling)[0] == 0.5:
                folded = torch.nn.Linear(lora_b.in_features, lora_b.out_features, bias=False, dtype=lora_b.weight.dtype)
                folded.weight = torch.nn.Parameter(lora_b.weight.detach() * scaling, requires_grad=False)
                self.lora_b, self.scaling = folded, 1.0

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            update = self.lora_b(self.lora_a(x))
            if self.scaling != 1.0:
                update.mul_(self.scaling)
            return update.add_(self.base(x))

    return LoraLinear


def inline_lora(model: Any) -> Any:
    """The transformers model inside a PEFT model for inference, with each LoRA layer replaced by a module that
    computes the same operations in the same order (the base layer's output plus the scaled adapter product; the
    adapter is not merged into the base weights, and its dropout is the identity in eval mode), so scores are
    bit-identical (``tests/test_llm.py``) at a fraction of PEFT's per-call cost. Layers with adapter variants
    (DoRA), several active adapters, merged weights or a base layer that is not a dense linear layer of the
    adapter's dtype (e.g. bitsandbytes' 4-bit layers on CUDA) are refused.

    Raises:
        ValueError: On a LoRA layer this function cannot reproduce exactly.
    """
    import torch
    from peft.tuners.lora import LoraLayer

    lora_linear = _lora_linear_class()
    inner = model.get_base_model()
    for parent in list(inner.modules()):
        for name, child in list(parent.named_children()):
            if not isinstance(child, LoraLayer):
                continue
            active = [a for a in child.active_adapters if a in child.lora_A]
            if len(active) != 1 or child.merged or child.lora_variant or child.disable_adapters or child.training:
                raise ValueError(f"{name}: only one active, unmerged, plain LoRA adapter in eval mode can be inlined")
            (adapter,) = active
            base = child.get_base_layer()
            if type(base) is not torch.nn.Linear or base.weight.dtype != child.lora_A[adapter].weight.dtype:
                raise ValueError(f"{name}: the base layer must be a dense linear layer of the adapter's dtype")
            setattr(parent, name, lora_linear(base, child.lora_A[adapter], child.lora_B[adapter], float(child.scaling[adapter])))
    return inner


#: How the base weights are held, by ``load_in_4bit``.
QUANTIZATION = {True: "nf4-double-quant", False: "float32"}


def load_causal_lm(base: str | Path, load_in_4bit: bool = True):
    """Tokenizer and causal LM of a local model directory through ``from_pretrained`` (safetensors only), in
    4-bit NF4 with double quantization when asked (bitsandbytes; compute in float32 on CPU, bfloat16 on CUDA).
    The same code loads a Mistral-7B directory; training (:mod:`training.train_llm`) and inference share it.

    Raises:
        ImportError: One line naming the install command, without the ``llm`` extra.
        ValueError: When the directory is missing.
    """
    require_llm()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

    if not Path(base).is_dir():
        raise ValueError(f"{base}: no such model directory")
    cuda = torch.cuda.is_available()
    compute = torch.bfloat16 if cuda else torch.float32
    kwargs: dict[str, Any] = {"dtype": compute, "use_safetensors": True}
    if load_in_4bit:
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=compute
        )
        kwargs["device_map"] = {"": 0 if cuda else "cpu"}
    tokenizer = AutoTokenizer.from_pretrained(str(base))
    model = AutoModelForCausalLM.from_pretrained(str(base), **kwargs)
    return tokenizer, model
