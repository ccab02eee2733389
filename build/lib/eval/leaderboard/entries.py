"""Leaderboard entries: one folder per agent under ``eval/leaderboard/<entry>/``, as in CompilerGym.

Each folder holds a ``README.md`` (what the agent is, how it was trained, the exact command, whether it is
deterministic) and an ``entry.json``::

    {"name": "ppo", "kind": "exported-net", "deterministic": true, "weights": "."}

Kinds: ``baseline`` (``"policy"`` names a built-in agent of :func:`agents.builtin_registry`; the folder documents
it), ``exported-net`` (a :class:`agents.ppo.PPOPolicy` export: safetensors + JSON) and ``llm`` (a base model
directory and a LoRA adapter, both safetensors, for :class:`agents.llm.LLMPolicy`; ``"adapter": null`` plays the
base alone; ``"quantization"`` is ``nf4``, the default, or ``float32``).

Entry folders are data and are read defensively: every path in ``entry.json`` must resolve inside the folder,
``entry.json`` is at most 64 KiB and nested at most 16 deep (integers at most 30 digits), an entry's name is its
folder's name (so names are unique whatever else a folder says), a learned entry may not take a built-in agent's
name, and a baseline entry (a built-in agent, cheap to run) never ships rows. A bad entry is reported and skipped;
it never stops the others. Loading an entry never unpickles or runs code.

An entry whose agent is too slow to replay in the main job may ship ``"precomputed": "results.csv"``: raw counts
it produced with ``python -m eval.leaderboard``. See :mod:`eval.leaderboard.shipped` for how they are checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from agents import AgentSpec, Policy, Registry, builtin_registry

ENTRY_ROOT = Path(__file__).resolve().parent
KINDS = ("baseline", "exported-net", "llm")
MAX_ENTRY_JSON = 64 * 1024
MAX_SHIPPED_CSV = 16 * 2**20
MAX_JSON_DEPTH = 16
MAX_INT_DIGITS = 30


class EntryError(ValueError):
    """A malformed entry folder."""


@dataclass(frozen=True)
class Entry:
    """A submitted agent."""

    name: str
    kind: str
    directory: Path
    spec: dict

    def path(self, key: str, default: str) -> Path:
        """The path named by ``spec[key]`` (or ``default``), resolved and required to lie inside the folder."""
        return inside(self.directory, self.spec.get(key, default), key)

    def make(self) -> Policy:
        """A fresh policy of this entry."""
        if self.kind == "baseline":
            return builtin_registry().make(self.spec["policy"])
        if self.kind == "llm":
            from agents.llm import LLMPolicy

            return LLMPolicy.load(
                self.path("base", "base"),
                None if self.spec.get("adapter", "adapter") is None else self.path("adapter", "adapter"),
                k=int(self.spec.get("k", 16)),
                rule=self.spec.get("candidates", "mixed"),
                name=self.name,
                load_in_4bit=self.spec.get("quantization", "nf4") == "nf4",
            )
        from agents.ppo import PPOPolicy

        return PPOPolicy.load(self.path("weights", "."), name=self.name)

    @property
    def shipped_rows_path(self) -> Path | None:
        """The shipped results file, or None when the entry ships none."""
        return self.path("precomputed", "") if self.spec.get("precomputed") else None


def bounded_json(text: str) -> object:
    """``json.loads(text)`` after checking that arrays and objects nest at most :data:`MAX_JSON_DEPTH` deep, and with
    integers of at most :data:`MAX_INT_DIGITS` digits (no recursion or giant-number errors from hostile files).

    Raises:
        ValueError: Naming what is too deep or too long, or the JSON error.
    """
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"nested deeper than {MAX_JSON_DEPTH} levels")
        elif ch in "]}":
            depth -= 1

    def parse_int(digits: str) -> int:
        if len(digits.lstrip("-")) > MAX_INT_DIGITS:
            raise ValueError(f"an integer longer than {MAX_INT_DIGITS} digits")
        return int(digits)

    return json.loads(text, parse_int=parse_int)


def inside(directory: Path, relative: object, key: str) -> Path:
    """``directory / relative`` resolved, refusing anything that is not a relative path inside ``directory``."""
    if not isinstance(relative, str):
        raise EntryError(f"{directory / 'entry.json'}: {key!r} must be a relative path string, got {relative!r}")
    root = directory.resolve()
    target = (root / relative).resolve()
    if Path(relative).is_absolute() or not (target == root or root in target.parents):
        raise EntryError(f"{directory / 'entry.json'}: {key!r} = {relative!r} leaves the entry folder")
    return target


def load_entry(directory: Path) -> Entry:
    """Reads ``directory/entry.json``.

    Raises:
        EntryError: On a missing, oversized or malformed entry.json, an unknown kind, or a path leaving the folder.
    """
    path = directory / "entry.json"
    try:
        if path.stat().st_size > MAX_ENTRY_JSON:
            raise EntryError(f"{path}: larger than {MAX_ENTRY_JSON} bytes")
        spec = bounded_json(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EntryError(f"{path}: not a readable entry ({reason})") from None
    if not isinstance(spec, dict):
        raise EntryError(f"{path}: entry.json must hold a JSON object")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise EntryError(f"{path}: unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    name = spec.get("name", directory.name)
    if not isinstance(name, str) or not name or name != name.strip() or "," in name:
        raise EntryError(f"{path}: bad name {name!r}")
    if name != directory.name:
        raise EntryError(f"{path}: the entry is named {name!r} but its folder is {directory.name!r}; they must agree")
    builtins = builtin_registry()
    if kind == "baseline":
        if spec.get("policy") not in builtins or name != spec.get("policy"):
            raise EntryError(f"{path}: a baseline entry documents a built-in agent under its own name; got {name!r}")
        if spec.get("precomputed"):
            raise EntryError(f"{path}: a baseline entry ships no rows (built-in agents are always run)")
    elif name in builtins:
        raise EntryError(f"{path}: the name {name!r} belongs to a built-in agent")
    if not (directory / "README.md").is_file():
        raise EntryError(f"{directory}: an entry needs a README.md")
    entry = Entry(name, kind, directory, spec)
    for key, default in (("weights", "."), ("base", "base"), ("adapter", "adapter"), ("precomputed", "")):
        if key == "adapter" and kind == "llm" and "adapter" in spec and spec["adapter"] is None:
            continue  # the base alone (an ``llm-base`` entry)
        if key in spec or (kind == "llm" and key in ("base", "adapter")):
            entry.path(key, default)
    if kind == "llm" and spec.get("quantization", "nf4") not in ("nf4", "float32"):
        raise EntryError(f"{path}: quantization must be nf4 or float32, got {spec.get('quantization')!r}")
    shipped = entry.shipped_rows_path
    if shipped is not None and (not shipped.is_file() or shipped.stat().st_size > MAX_SHIPPED_CSV):
        raise EntryError(f"{path}: precomputed file {shipped.name} is missing or larger than {MAX_SHIPPED_CSV} bytes")
    return entry


@dataclass
class Discovery:
    """The entries found under a root (and any extra roots), and the folders that were refused (with the reason).

    Attributes:
        extra: The extra roots searched after the main one (what a worker process needs to find the same entries).
    """

    entries: dict[str, Entry] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    extra: tuple[Path, ...] = ()


def discover(root: Path = ENTRY_ROOT, extra: tuple[Path, ...] = ()) -> Discovery:
    """Every valid entry folder under ``root``, then under each of ``extra`` (your own entries, wherever they
    live): baselines first, then learned entries, alphabetically. A name is taken once: a later folder with a name
    already found is refused, as is an extra root that is not a directory."""
    found = Discovery(extra=tuple(Path(r) for r in extra))
    loaded = []
    for base in (root, *found.extra):
        if not base.is_dir():
            found.refused[str(base)] = f"{base}: no such entries directory"
            continue
        for d in sorted(p for p in base.iterdir() if p.is_dir() and (p / "entry.json").exists()):
            label = d.name if base is root else str(d)  # the package's entries by name, others by path
            try:
                loaded.append((label, load_entry(d)))
            except EntryError as exc:
                found.refused[label] = str(exc)
    loaded.sort(key=lambda le: (le[1].kind != "baseline", le[1].name))
    for label, e in loaded:
        if e.name in found.entries:
            other = found.entries[e.name].directory
            found.refused[label] = f"{e.directory}: the name {e.name!r} is already used by {other}"
            continue
        found.entries[e.name] = e
    return found


def registry(root: Path = ENTRY_ROOT, discovery: Discovery | None = None) -> Registry:
    """The built-in agents plus every learned entry under ``root``: the one list of agents a run can name."""
    found = discovery or discover(root)
    reg = builtin_registry()
    for e in found.entries.values():
        if e.kind != "baseline":
            reg.register(AgentSpec(e.name, e.make, kind=e.kind, source=str(e.directory)))
    return reg
