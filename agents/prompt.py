"""The text form of an eviction decision, read by the LLM policy.

A prompt lists the incoming tensor and the candidates, each as a few *bucketed* word tokens, so that a small
word-level tokenizer gives every bucket its own token and the model never has to parse digits::

    inc kK s20 free3 pos7 it4 ; C0 kW s24 a9 f2 r10 pf3 d0 l-1 i1 ; C1 kA s22 a2 f0 rn pn d1 l0 i1 ; ... ; evict

The completion is one candidate identifier (`` C1``). Every field comes from :class:`envs.features.DecisionView`
(the past only; no next-use times), so a prompt never holds future knowledge.

Fields of a candidate: identifier ``C{j}``; kind ``k{W,A,G,O,K,T,I}``; ``s{log2 size}``; ``a{log2(1 + age)}``
(accesses since its last access); ``f{log2(1 + accesses)}``; ``r{log2(1 + previous reuse interval)}`` or ``rn``
(none yet); predicted next use (last access + reuse interval − now) as ``pf{log2}`` (ahead), ``pp{log2}``
(overdue) or ``pn`` (unknown); ``d0``/``d1`` (dirty); ``l{±layer delta}`` (its layer at its last access minus the
incoming access's) clipped to ±8; ``i1`` if it was last accessed in the current iteration. Global: ``inc`` + the
incoming tensor's kind and size, ``free{tenths}`` of the capacity, ``pos{log2(1 + accesses so far) / 3}`` and
``it{log2(1 + accesses since the iteration began) / 2}``, each capped at 10. Version 2 made the position fields
past-only (version 1 divided by the trace's and the iteration's total length).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from envs.trace import Kind

if TYPE_CHECKING:
    from envs.features import DecisionView

#: Bumped whenever the serialisation changes (recorded in label files and model configs).
PROMPT_VERSION = 2
MAX_CANDIDATES = 64
KIND_TOKENS = {Kind.WEIGHT: "kW", Kind.ACTIVATION: "kA", Kind.GRADIENT: "kG", Kind.OPTIMIZER_STATE: "kO",
               Kind.KV_CACHE: "kK", Kind.TEMPORARY: "kT", Kind.INPUT: "kI"}  # fmt: skip
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


def candidate_token(j: int) -> str:
    return f"C{j}"


def _log_bucket(x: float, top: int) -> int:
    return min(int(math.log2(1.0 + max(x, 0.0))), top)


def vocabulary() -> list[str]:
    """Every word a prompt or completion can contain (the word-level tokenizer's vocabulary)."""
    words = ["inc", ";", "evict", "rn", "pn", "d0", "d1", "i0", "i1", *KIND_TOKENS.values()]
    words += [candidate_token(j) for j in range(MAX_CANDIDATES)]
    words += [f"s{b}" for b in range(41)] + [f"a{b}" for b in range(25)] + [f"f{b}" for b in range(17)]
    words += [f"r{b}" for b in range(25)] + [f"pf{b}" for b in range(25)] + [f"pp{b}" for b in range(25)]
    words += [f"l{d:+d}" if d else "l0" for d in range(-8, 9)]
    words += [f"{name}{b}" for name in ("free", "pos", "it") for b in range(11)]
    return words


def serialize(view: DecisionView) -> str:
    """The prompt of one decision (see the module docstring); a function of the sealed view alone."""
    if view.n > MAX_CANDIDATES:
        raise ValueError(f"a prompt holds at most {MAX_CANDIDATES} candidates, got {view.n}")
    cap = float(view.capacity)
    inc_kind = KIND_TOKENS[Kind(int(view.incoming_kind))]
    free = int(10 * max(cap - float(view.used_bytes), 0.0) / cap)
    pos = min(int(math.log2(1.0 + view.now) / 3), 10)
    it_part = min(int(math.log2(1.0 + view.now - view.iteration_start) / 2), 10)
    parts = [f"inc {inc_kind} s{min(int(math.log2(max(view.incoming_size, 1))), 40)} free{min(free, 10)} pos{pos} it{it_part}"]
    for j in range(view.n):
        size = int(view.size[j])
        last = int(view.last_access[j])
        iv = int(view.reuse_interval[j])
        if iv > 0:
            ahead = last + iv - view.now
            pred = f"pf{_log_bucket(ahead, 24)}" if ahead >= 0 else f"pp{_log_bucket(-ahead, 24)}"
            reuse = f"r{_log_bucket(iv, 24)}"
        else:
            pred, reuse = "pn", "rn"
        delta = int(np.clip(int(view.layer[j]) - view.incoming_layer, -8, 8))
        parts.append(
            f"{candidate_token(j)} {KIND_TOKENS[Kind(int(view.kind[j]))]} s{min(int(math.log2(max(size, 1))), 40)} "
            f"a{_log_bucket(view.now - last, 24)} f{_log_bucket(int(view.frequency[j]), 16)} {reuse} {pred} "
            f"d{int(view.dirty[j])} {f'l{delta:+d}' if delta else 'l0'} i{int(last >= view.iteration_start)}"
        )
    parts.append("evict")
    return " ; ".join(parts)


def completion(index: int) -> str:
    """The completion naming candidate ``index`` (a leading space separates it from the prompt)."""
    return f" {candidate_token(index)}"
