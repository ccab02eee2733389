"""The layering rules: envs <- agents <- eval/training <- app, and a light ``import envs``."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BANNED = {
    "envs": ("agents", "eval", "training", "app"),
    "agents": ("eval", "training", "app"),
    "training": ("app",),
    "eval": ("app",),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
    return out


def test_dependencies_point_one_way() -> None:
    wrong = []
    for pkg, banned in BANNED.items():
        for f in sorted((ROOT / pkg).rglob("*.py")):
            for line, mod in _imports(f):
                if mod.split(".")[0] in banned:
                    wrong.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not wrong, "\n".join(wrong)


def test_import_envs_and_making_the_env_load_no_torch() -> None:
    code = (
        "import sys, gymnasium as gym, envs; from envs.benchmarks import get_suite; "
        "gym.make('tensorcache/Eviction-v1'); get_suite('tcb-v2').tasks(); "
        "print(sorted(m for m in ('torch', 'transformers', 'stable_baselines3') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_no_module_name_collides() -> None:
    """One name, one meaning: no two project modules share a file name (outside __init__/__main__)."""
    seen: dict[str, Path] = {}
    dupes = []
    for pkg in ("envs", "agents", "eval", "training"):
        for f in (ROOT / pkg).rglob("*.py"):
            if f.name in ("__init__.py", "__main__.py"):
                continue
            if f.name in seen:
                dupes.append(f"{f.relative_to(ROOT)} and {seen[f.name].relative_to(ROOT)}")
            seen[f.name] = f
    assert not dupes, dupes
