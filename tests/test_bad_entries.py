"""Bad leaderboard entry folders are reported and skipped, never fatal."""

from __future__ import annotations

import json
from pathlib import Path


def test_bad_entry_folders_are_reported_and_skipped(tmp_path: Path) -> None:
    from eval.leaderboard.entries import discover

    def entry(name: str, spec: object, readme: bool = True) -> None:
        d = tmp_path / name
        d.mkdir()
        (d / "entry.json").write_text(spec if isinstance(spec, str) else json.dumps(spec))
        if readme:
            (d / "README.md").write_text("x")

    entry("ok", {"name": "mine", "kind": "exported-net", "weights": "."})
    entry("escape", {"name": "esc", "kind": "exported-net", "weights": "../ok"})
    entry("absolute", {"name": "abs", "kind": "exported-net", "weights": "/etc"})
    entry("zero", {"name": "zero", "kind": "llm", "base": "/dev/zero", "adapter": "a"})
    entry("broken", "{not json")
    entry("list", "[1, 2]")
    entry("huge", json.dumps({"name": "huge", "kind": "baseline", "policy": "lru", "pad": "x" * 70_000}))
    entry("thief", {"name": "lru", "kind": "exported-net", "weights": "."})
    entry("twin", {"name": "mine", "kind": "exported-net", "weights": "."})
    entry("ships", {"name": "ships", "kind": "exported-net", "precomputed": "../../etc/passwd"})
    found = discover(tmp_path)
    assert set(found.entries) == {"mine"}
    assert set(found.refused) == {"escape", "absolute", "zero", "broken", "list", "huge", "thief", "twin", "ships"}
    assert all("\n" not in why for why in found.refused.values())
    assert "leaves the entry folder" in found.refused["escape"] and "built-in" in found.refused["thief"]
    assert "already used" in found.refused["twin"]
