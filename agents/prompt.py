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

Version 4 reads the schedule (the view of an episode with schedule predictions, e.g. the ``schedule`` candidate
rule, whose candidate 0 is the ``schedule`` heuristic's choice) and drops the fields it makes redundant::

    inc kW s24 free1 hF it2 w1 C0 kA s22 a3 hF x1 n13 o1 z1 l-1 C1 kO s24 a9 hO xd o0 z0 l+3 ... evict

Global: ``inc`` + kind and size as before, ``free{tenths}``, ``h{F,B,O,P,D}`` the current phase, ``it{...}`` as
before, ``w{0,1}`` whether an iteration has finished (before that the predictions come from phase rules). A
candidate: ``C{j}``, kind, ``s``, ``a`` as before; ``h{F,B,O,P,D}`` its phase at its last access; ``x{c}`` the
cost of evicting it per byte (1 if dirty: a write-back; +1 if its predicted use is a READ: a read-back);
``n{2 log2(1 + distance)}`` the schedule's predicted accesses until its next use in half-octave buckets (up to
``n99``), or ``xd`` in place of ``x``/``n``: predicted dead; ``o{r}`` its rank by that distance among the
candidates (``o0`` the farthest, so equal buckets never tie) and ``z{r}`` its rank by size (``z0`` the largest),
``l`` the layer delta as before. With K = 8 a prompt is about 90 tokens.

Versions: 4 (above); 3 dropped the ``;`` separators and joined the dirty and iteration flags into one word (about 150
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
PROMPT_VERSION = 4
#: Versions :func:`serialize` can still write (a model plays with the version it was trained on).
PROMPT_VERSIONS = (2, 3, 4)
#: Versions that read the schedule's predictions (their views must carry them).
SCHEDULE_VERSIONS = (4,)
PHASE_LETTERS = "FBOPD"  # Phase.FORWARD .. Phase.DECODE
MAX_CANDIDATES = 64
KIND_TOKENS = {Kind.WEIGHT: "kW", Kind.ACTIVATION: "kA", Kind.GRADIENT: "kG", Kind.OPTIMIZER_STATE: "kO",
               Kind.KV_CACHE: "kK", Kind.TEMPORARY: "kT", Kind.INPUT: "kI"}  # fmt: skip
SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")


def default_candidates(version: int) -> tuple[int, str]:
    """(K, candidate rule) a prompt version was made for: 8 ``schedule`` candidates for a version that reads the
    schedule, else 16 ``mixed``."""
    return (8, "schedule") if version in SCHEDULE_VERSIONS else (16, "mixed")


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
    if version >= 4:
        words += [f"h{c}" for c in PHASE_LETTERS] + ["xd", "w0", "w1"] + [f"x{c}" for c in range(3)]
        words += [f"n{b}" for b in range(2, 100)] + [f"o{r}" for r in range(MAX_CANDIDATES)]
        words += [f"z{r}" for r in range(MAX_CANDIDATES)]
    return words


def serialize(view: DecisionView, version: int = PROMPT_VERSION) -> str:
    """The prompt of one decision in ``version`` (see the module docstring); a function of the sealed view alone."""
    return " ".join(prompt_words(view, version))


def prompt_words(view: DecisionView, version: int = PROMPT_VERSION) -> list[str]:
    """The words of :func:`serialize`'s prompt, in order (what a word-level tokenizer maps one to one to ids)."""
    check_version(version)
    if view.n > MAX_CANDIDATES:
        raise ValueError(f"a prompt holds at most {MAX_CANDIDATES} candidates, got {view.n}")
    if version >= 4:
        return _schedule_words(view)
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


def _rank(values: list, descending: bool) -> list[int]:
    """Each value's rank (0 = the largest when ``descending``), ties in index order."""
    order = sorted(range(len(values)), key=lambda j: (-values[j] if descending else values[j], j))
    rank = [0] * len(values)
    for r, j in enumerate(order):
        rank[j] = r
    return rank


def _schedule_words(view: DecisionView) -> list[str]:
    """Version 4's words (see the module docstring)."""
    from envs.gym.schedule import DEAD

    if view.schedule_distance is None or view.last_phase is None:
        raise ValueError("prompt version 4 reads the schedule's predictions: run it in an episode that has them "
                         "(the schedule candidate rule, or schedule=True)")  # fmt: skip
    log2 = math.log2
    now, cap = int(view.now), float(view.capacity)
    free = min(int(10 * max(cap - float(view.used_bytes), 0.0) / cap), 10)
    it_part = min(int(log2(1.0 + now - int(view.iteration_start)) / 2), 10)
    inc_size = min(int(log2(max(int(view.incoming_size), 1))), 40)
    words = ["inc", KIND_TOKENS[Kind(int(view.incoming_kind))], f"s{inc_size}", f"free{free}",
             f"h{PHASE_LETTERS[int(view.phase)]}", f"it{it_part}", f"w{min(int(view.iteration), 1)}"]  # fmt: skip
    dist = view.schedule_distance.tolist()
    sizes = view.size.tolist()
    dist_rank, size_rank = _rank(dist, True), _rank(sizes, True)
    inc_layer = int(view.incoming_layer)
    columns = (sizes, view.last_access.tolist(), view.kind.tolist(), view.dirty.tolist(), dist,
               view.schedule_next_read.tolist(), view.last_phase.tolist(), view.layer.tolist())  # fmt: skip
    for j, (size, last, kind, dirty, d, read, phase, layer) in enumerate(zip(*columns, strict=True)):
        if d >= DEAD:
            pred = ("xd",)
        else:
            pred = (f"x{int(dirty > 0) + int(read > 0)}", f"n{min(max(int(2 * log2(1.0 + max(d, 0.0))), 2), 99)}")
        delta = min(max(layer - inc_layer, -8), 8)
        words += (f"C{j}", KIND_TOKENS[kind], f"s{min(int(log2(max(size, 1))), 40)}", f"a{_log_bucket(now - last, 24)}",
                  f"h{PHASE_LETTERS[int(phase)]}", *pred, f"o{dist_rank[j]}", f"z{size_rank[j]}",
                  f"l{delta:+d}" if delta else "l0")  # fmt: skip
    words.append("evict")
    return words


def completion(index: int) -> str:
    """The completion naming candidate ``index`` (a leading space separates it from the prompt)."""
    return f" {candidate_token(index)}"
