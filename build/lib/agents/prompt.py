"""The text form of an eviction decision, read by the LLM policy.

A prompt lists the incoming tensor and the candidates, each as a few *bucketed* word tokens, so that a small
word-level tokenizer gives every bucket its own token and the model never has to parse digits::

    inc kK s20 free3 pos7 it4 C0 kW s24 a9 f2 r10 pf3 l-1 d0i1 C1 kA s22 a2 f0 rn pn l0 d1i1 ... evict

The completion is one candidate identifier (`` C1``). Every field comes from :class:`envs.gym.features.DecisionView`
(the past only; no next-use times), so a prompt never holds future knowledge.

Fields of a candidate: identifier ``C{j}``; kind ``k{W,A,G,O,K,T,I}``; ``s{log2 size}``; ``a{log2(1 + age)}``
(accesses since its last access); ``f{log2(1 + accesses)}``; ``r{log2(1 + previous reuse interval)}`` or ``rn``
(none yet); predicted next use (last access + reuse interval − now) as ``pf{log2}`` (ahead), ``pp{log2}``
(overdue) or ``pn`` (unknown); ``l{±layer delta}`` (its layer at its last access minus the incoming access's)
clipped to ±8; ``d{0,1}i{0,1}``: dirty, and last accessed in the current iteration. Global: ``inc`` + the
incoming tensor's kind and size, ``free{tenths}`` of the capacity, ``pos{log2(1 + accesses so far) / 3}`` and
``it{log2(1 + accesses since the iteration began) / 2}``, each capped at 10.

Versions: 3 dropped the ``;`` separators and joined the dirty and iteration flags into one word (about 150
tokens for 16 candidates instead of 185, for faster inference); 2 made the position fields past-only (version 1
divided by the trace's and the iteration's total length).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from envs.trace import Kind

if TYPE_CHECKING:
    from envs.gym.features import DecisionView

#: Bumped whenever the serialisation changes (recorded in label files and model configs).
PROMPT_VERSION = 3
#: Versions :func:`serialize` can still write (a model plays with the version it was trained on).
PROMPT_VERSIONS = (2, 3)
MAX_CANDIDATES = 64
KIND_TOKENS = {Kind.WEIGHT: "kW", Kind.ACTIVATION: "kA", Kind.GRADIENT: "kG", Kind.OPTIMIZER_STATE: "kO",
               Kind.KV_CACHE: "kK", Kind.TEMPORARY: "kT", Kind.INPUT: "kI"}  # fmt: skip
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


def candidate_token(j: int) -> str:
    return f"C{j}"


def _log_bucket(x: float, top: int) -> int:
    return min(int(math.log2(1.0 + max(x, 0.0))), top)


def check_version(version: object) -> None:
    """Raises ValueError unless :func:`serialize` writes prompt ``version``."""
    if version not in PROMPT_VERSIONS:
        raise ValueError(f"prompt version {version!r} is not supported; valid: {', '.join(map(str, PROMPT_VERSIONS))}")


def vocabulary(version: int = PROMPT_VERSION) -> list[str]:
    """Every word a prompt or completion of ``version`` can contain (the word-level tokenizer's vocabulary)."""
    check_version(version)
    if version == 2:
        words = ["inc", ";", "evict", "rn", "pn", "d0", "d1", "i0", "i1", *KIND_TOKENS.values()]
    else:
        words = ["inc", "evict", "rn", "pn", *(f"d{d}i{i}" for d in (0, 1) for i in (0, 1)), *KIND_TOKENS.values()]
    words += [candidate_token(j) for j in range(MAX_CANDIDATES)]
    words += [f"s{b}" for b in range(41)] + [f"a{b}" for b in range(25)] + [f"f{b}" for b in range(17)]
    words += [f"r{b}" for b in range(25)] + [f"pf{b}" for b in range(25)] + [f"pp{b}" for b in range(25)]
    words += [f"l{d:+d}" if d else "l0" for d in range(-8, 9)]
    words += [f"{name}{b}" for name in ("free", "pos", "it") for b in range(11)]
    return words


def serialize(view: DecisionView, version: int = PROMPT_VERSION) -> str:
    """The prompt of one decision in ``version`` (see the module docstring); a function of the sealed view alone."""
    return " ".join(prompt_words(view, version))


def prompt_words(view: DecisionView, version: int = PROMPT_VERSION) -> list[str]:
    """The words of :func:`serialize`'s prompt, in order (what a word-level tokenizer maps one to one to ids)."""
    check_version(version)
    if view.n > MAX_CANDIDATES:
        raise ValueError(f"a prompt holds at most {MAX_CANDIDATES} candidates, got {view.n}")
    log2 = math.log2
    now, it_start = int(view.now), int(view.iteration_start)
    cap = float(view.capacity)
    free = int(10 * max(cap - float(view.used_bytes), 0.0) / cap)
    pos = min(int(log2(1.0 + now) / 3), 10)
    it_part = min(int(log2(1.0 + now - it_start) / 2), 10)
    inc_size = min(int(log2(max(int(view.incoming_size), 1))), 40)
    inc_kind = KIND_TOKENS[Kind(int(view.incoming_kind))]
    words = ["inc", inc_kind, f"s{inc_size}", f"free{min(free, 10)}", f"pos{pos}", f"it{it_part}"]
    inc_layer = int(view.incoming_layer)
    columns = (view.size.tolist(), view.last_access.tolist(), view.reuse_interval.tolist(), view.frequency.tolist(),
               view.layer.tolist(), view.kind.tolist(), view.dirty.tolist())  # fmt: skip
    for j, (size, last, iv, freq, layer, kind, dirty) in enumerate(zip(*columns, strict=True)):
        if iv > 0:
            ahead = last + iv - now
            pred = f"pf{_log_bucket(ahead, 24)}" if ahead >= 0 else f"pp{_log_bucket(-ahead, 24)}"
            reuse = f"r{_log_bucket(iv, 24)}"
        else:
            pred, reuse = "pn", "rn"
        delta = min(max(layer - inc_layer, -8), 8)
        layer_word = f"l{delta:+d}" if delta else "l0"
        this_iteration = int(last >= it_start)
        if version < 3:
            words.append(";")
        words += (f"C{j}", KIND_TOKENS[kind], f"s{min(int(log2(max(size, 1))), 40)}", f"a{_log_bucket(now - last, 24)}",
                  f"f{_log_bucket(freq, 16)}", reuse, pred)  # fmt: skip
        words += (layer_word, f"d{dirty}i{this_iteration}") if version >= 3 else (f"d{dirty}", layer_word, f"i{this_iteration}")
    words += (";", "evict") if version < 3 else ("evict",)
    return words


def completion(index: int) -> str:
    """The completion naming candidate ``index`` (a leading space separates it from the prompt)."""
    return f" {candidate_token(index)}"
