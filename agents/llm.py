"""The LLM eviction policy: a causal language model reads the decision as text and names the victim.

Every candidate is scored by the sum of the log-probabilities of its identifier's tokens after the prompt
(:mod:`agents.prompt`); the best-scored candidate is evicted. When every identifier is a single token (the
word-level tokenizer of the built-in presets) one forward pass of the prompt scores all candidates; otherwise the
K prompt+identifier sequences go through the model as one padded batch. LoRA adapters are merged into the base
weights for inference. The heavy libraries (transformers, peft) are imported only here and only when needed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from agents.base import Policy

if TYPE_CHECKING:
    from envs.features import DecisionView

LLM_EXTRA_HINT = "pip install -e '.[llm]'"


def require_llm() -> None:
    """Raises a one-line ImportError naming the install command when the ``llm`` extra is missing."""
    import importlib.util

    missing = [m for m in ("transformers", "peft", "trl", "bitsandbytes") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"the LLM policy needs the 'llm' extra (missing: {', '.join(missing)}); run: {LLM_EXTRA_HINT}")


class LLMPolicy(Policy):
    """Greedy policy of a causal LM over :func:`agents.prompt.serialize` prompts.

    Args:
        model: A ``transformers`` causal LM (eval mode).
        tokenizer: Its tokenizer.
        k: Candidates per decision (the prompt format supports up to 64).
        rule: Candidate rule of the decisions (``lru`` or ``mixed``).
    """

    def __init__(self, model: Any, tokenizer: Any, k: int = 16, rule: str = "mixed", name: str = "llm", meta: dict | None = None):
        import torch

        self.model, self.tokenizer = model, tokenizer
        self.candidate_k, self.candidate_rule, self.name = k, rule, name
        self.meta = meta or {}
        self._torch = torch
        from agents.prompt import completion

        self._completion_ids = [tokenizer(completion(j), add_special_tokens=False).input_ids for j in range(k)]
        self.single_token = all(len(c) == 1 for c in self._completion_ids)
        self.decision_seconds: list[float] = []
        self.batched = self.single_token

    def config(self) -> dict[str, Any]:
        return {"name": self.name, "k": self.candidate_k, "candidates": self.candidate_rule, **self.meta}

    def scores(self, prompt: str, n: int) -> np.ndarray:
        """Sum of identifier-token log-probabilities of candidates 0..n-1 after ``prompt``."""
        torch = self._torch
        tok = self.tokenizer
        prompt_ids = tok(prompt).input_ids
        with torch.no_grad():
            if self.single_token:
                logits = self.model(input_ids=torch.tensor([prompt_ids])).logits[0, -1].float()
                logp = torch.log_softmax(logits, dim=-1)
                return np.array([float(logp[self._completion_ids[j][0]]) for j in range(n)])
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
        from agents.prompt import serialize

        t0 = time.perf_counter()
        s = self.scores(serialize(view), view.n)
        self.decision_seconds.append(time.perf_counter() - t0)
        return int(np.argmax(s))

    def choose_batch(self, views: list[DecisionView]) -> list[int]:
        """One padded forward pass for the decisions of several traces (single-token identifiers only)."""
        if not self.single_token or len(views) == 1:
            return [self.choose(v) for v in views]
        from agents.prompt import serialize

        torch = self._torch
        t0 = time.perf_counter()
        encoded = [self.tokenizer(serialize(v)).input_ids for v in views]
        width = max(len(e) for e in encoded)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        ids = torch.full((len(views), width), pad, dtype=torch.long)
        att = torch.zeros((len(views), width), dtype=torch.long)
        for i, e in enumerate(encoded):  # right padding: a causal model's logits at real positions ignore it
            ids[i, : len(e)] = torch.tensor(e)
            att[i, : len(e)] = 1
        with torch.no_grad():
            logits = self.model(input_ids=ids, attention_mask=att).logits.float()
        out = []
        for i, (v, e) in enumerate(zip(views, encoded, strict=True)):
            logp = torch.log_softmax(logits[i, len(e) - 1], dim=-1)
            out.append(int(np.argmax([float(logp[self._completion_ids[j][0]]) for j in range(v.n)])))
        per = (time.perf_counter() - t0) / len(views)
        self.decision_seconds.extend([per] * len(views))
        return out

    @classmethod
    def load(
        cls, base: str | Path, adapter: str | Path | None = None, k: int = 16, rule: str = "mixed", name: str = "llm"
    ) -> LLMPolicy:
        """Loads a base model directory (safetensors only) and merges an optional LoRA adapter into it.

        Raises:
            ImportError: One line naming the install command, without the ``llm`` extra.
            ValueError: When a directory is missing.
        """
        require_llm()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        for d in (base, adapter):
            if d is not None and not Path(d).is_dir():
                raise ValueError(f"{d}: no such model directory")
        tokenizer = AutoTokenizer.from_pretrained(str(base))
        model = AutoModelForCausalLM.from_pretrained(str(base), dtype=torch.float32, use_safetensors=True)
        if adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        model.eval()
        return cls(model, tokenizer, k, rule, name, {"base": str(base), "adapter": None if adapter is None else str(adapter)})
