"""Leaderboard entries: one folder per agent under ``eval/leaderboard/<entry>/``, as in CompilerGym.

Each folder holds a ``README.md`` (what the agent is, how it was trained, the exact command, whether it is
deterministic) and an ``entry.json``::

    {"name": "ppo", "kind": "exported-net", "deterministic": true, "weights": "."}

Kinds: ``baseline`` (``"policy"`` names a built-in of :data:`agents.BASELINES`), ``exported-net`` (a
:class:`agents.ppo.PPOPolicy` export: safetensors + JSON) and ``llm`` (a base model directory and a LoRA adapter,
both safetensors, for :class:`agents.llm.LLMPolicy`). Loading an entry never unpickles or runs code.

An entry whose agent is too slow to replay in the main job may ship ``"precomputed": "results.csv"``: rows it
produced with ``python -m eval.leaderboard``. The runner uses them only when every row's trace hash, capacity and
env version match the current suite; otherwise it recomputes. ``validate`` replays them like any other row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from agents import BASELINES, Policy, make_policy

ENTRY_ROOT = Path(__file__).resolve().parent
KINDS = ("baseline", "exported-net", "llm")


@dataclass(frozen=True)
class Entry:
    """A submitted agent."""

    name: str
    kind: str
    directory: Path
    spec: dict

    def make(self) -> Policy:
        """A fresh policy of this entry."""
        if self.kind == "baseline":
            return make_policy(self.spec["policy"])
        if self.kind == "llm":
            from agents.llm import LLMPolicy

            s = self.spec
            return LLMPolicy.load(
                self.directory / s.get("base", "base"),
                self.directory / s.get("adapter", "adapter"),
                k=int(s.get("k", 16)),
                rule=s.get("candidates", "mixed"),
                name=self.name,
            )
        from agents.ppo import PPOPolicy

        return PPOPolicy.load(self.directory / self.spec.get("weights", "."), name=self.name)

    def precomputed_rows(self) -> list[dict]:
        """Rows shipped with the entry (empty when it ships none)."""
        name = self.spec.get("precomputed")
        if not name:
            return []
        import csv

        with (self.directory / name).open() as fh:
            return list(csv.DictReader(fh))


def load_entry(directory: Path) -> Entry:
    """Reads ``directory/entry.json``.

    Raises:
        ValueError: On a missing or malformed entry.json or an unknown kind.
    """
    path = directory / "entry.json"
    try:
        spec = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable entry ({exc})") from None
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ValueError(f"{path}: unknown kind {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "baseline" and spec.get("policy") not in BASELINES:
        raise ValueError(f"{path}: unknown baseline policy {spec.get('policy')!r}")
    if not (directory / "README.md").is_file():
        raise ValueError(f"{directory}: an entry needs a README.md")
    return Entry(spec.get("name", directory.name), kind, directory, spec)


def discover(root: Path = ENTRY_ROOT) -> dict[str, Entry]:
    """Every entry folder under ``root``, by name (baselines first, then learned entries, alphabetically)."""
    entries = [load_entry(d) for d in sorted(root.iterdir()) if (d / "entry.json").is_file()]
    entries.sort(key=lambda e: (e.kind != "baseline", e.name))
    return {e.name: e for e in entries}
