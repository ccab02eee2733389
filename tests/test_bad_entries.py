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

    entry("mine", {"name": "mine", "kind": "exported-net", "weights": "."})
    entry("escape", {"name": "escape", "kind": "exported-net", "weights": "../ok"})
    entry("absolute", {"name": "absolute", "kind": "exported-net", "weights": "/etc"})
    entry("zero", {"name": "zero", "kind": "llm", "base": "/dev/zero", "adapter": "a"})
    entry("broken", "{not json")
    entry("list", "[1, 2]")
    entry("huge", json.dumps({"name": "huge", "kind": "baseline", "policy": "lru", "pad": "x" * 70_000}))
    entry("thief", {"name": "lru", "kind": "exported-net", "weights": "."})
    entry("lru", {"name": "lru", "kind": "exported-net", "weights": "."})
    entry("twin", {"name": "mine", "kind": "exported-net", "weights": "."})
    entry("ships", {"name": "ships", "kind": "exported-net", "precomputed": "../../etc/passwd"})
    entry("deep", "[" * 30_000)  # a RecursionError in json, unguarded
    entry("digits", '{"name": "digits", "kind": "exported-net", "k": ' + "9" * 5001 + "}")  # int() refuses it
    # a folder sorting before the real one may not take a built-in's name (it used to replace fifo, rows and all)
    entry("aaa-fifo", {"name": "fifo", "kind": "baseline", "policy": "fifo", "precomputed": "results.csv"})
    entry("fifo", {"name": "fifo", "kind": "baseline", "policy": "fifo"})
    entry("lfu", {"name": "lfu", "kind": "baseline", "policy": "lfu", "precomputed": "results.csv"})
    (tmp_path / "lfu" / "results.csv").write_text("agent\nlfu\n")
    found = discover(tmp_path)
    assert set(found.entries) == {"mine", "fifo"} and found.entries["fifo"].directory.name == "fifo"
    assert set(found.refused) == {"escape", "absolute", "zero", "broken", "list", "huge", "thief", "lru", "twin",
                                  "ships", "deep", "digits", "aaa-fifo", "lfu"}  # fmt: skip
    assert all("\n" not in why for why in found.refused.values())
    assert "leaves the entry folder" in found.refused["escape"] and "built-in" in found.refused["lru"]
    assert all("must agree" in found.refused[name] for name in ("twin", "thief", "aaa-fifo"))
    assert "nested deeper" in found.refused["deep"] and "digits" in found.refused["digits"]
    assert "ships no rows" in found.refused["lfu"]


def test_entries_outside_the_package_with_entries_dir(tmp_path: Path) -> None:
    """``--entries DIR``: your own entry folders, wherever they live, found by the run and by its worker processes;
    a name already taken is refused."""
    import shutil

    from eval.leaderboard.entries import ENTRY_ROOT, discover, registry
    from eval.leaderboard.run import _evaluate_chunk
    from tests.conftest import make_suite

    mine = tmp_path / "my-ppo"
    shutil.copytree(ENTRY_ROOT / "ppo", mine)
    (mine / "entry.json").write_text(json.dumps({"name": "my-ppo", "kind": "exported-net", "weights": "."}))
    shutil.copytree(ENTRY_ROOT / "ppo", tmp_path / "ppo")  # the shipped entry's name: refused
    found = discover(extra=(tmp_path, tmp_path / "missing"))
    assert "my-ppo" in found.entries and found.entries["ppo"].directory == ENTRY_ROOT / "ppo"
    assert "already used" in found.refused[str(tmp_path / "ppo")] and str(tmp_path / "missing") in found.refused
    assert registry(discovery=found).kind("my-ppo") == "learned"
    inst = make_suite("mini", {"test": (11,)}).instances("test")
    rows = _evaluate_chunk(("my-ppo", inst, {}, found.extra))  # what a pool worker runs
    assert rows[0]["agent"] == "my-ppo" and rows[0]["n_req"] > 0
