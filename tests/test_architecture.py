"""The layering rules: envs <- agents <- eval/training <- app between the top-level packages; inside envs the rooms
io <- trace <- sim <- gym and trace <- capture <- workloads (<- benchmarks <- gym); no import cycle anywhere (lazy
imports count); a light ``import envs``; one name per module."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("envs", "agents", "eval", "training", "app")
BANNED = {
    "envs": ("agents", "eval", "training", "app"),
    "agents": ("eval", "training", "app"),
    "training": ("app",),
    "eval": ("app", "training"),
}
#: The rooms of envs/ and the rooms each may import (besides itself). Modules at the root of envs/ (the package
#: itself, version.py) are the room "envs".
ENVS_ROOMS = {
    "io": (),
    "trace": ("io",),
    "sim": ("trace", "io"),
    "capture": ("trace", "io"),
    "workloads": ("trace", "capture", "io"),
    "benchmarks": ("trace", "sim", "workloads", "io", "envs"),
    "gym": ("trace", "sim", "capture", "workloads", "benchmarks", "io", "envs"),
    "cli": ("trace", "sim", "capture", "workloads", "benchmarks", "gym", "io", "envs"),
    "envs": ("trace", "version"),
}


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute import of ``path``, module-level or lazy, as (line, module); ``from a import b`` also gives
    ``a.b`` (b may be a module)."""
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            mods[name.removesuffix(".__init__")] = f
    return mods


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (ROOT / "envs" / parts[1]).is_dir()) else "envs"


def test_dependencies_point_one_way() -> None:
    wrong = []
    for pkg, banned in BANNED.items():
        for f in sorted((ROOT / pkg).rglob("*.py")):
            for line, mod in _imports(f):
                if mod.split(".")[0] in banned:
                    wrong.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not wrong, "\n".join(wrong)


def test_rooms_inside_envs_point_one_way() -> None:
    mods = _modules()
    wrong = []
    for name, f in sorted(mods.items()):
        if not name.startswith("envs"):
            continue
        room = _room(name)
        for line, target in _imports(f):
            if target not in mods or not target.startswith("envs"):
                continue  # third-party, or "from a import b" where b is a name, not a module
            other = _room(target)
            if other != room and other not in ENVS_ROOMS[room]:
                wrong.append(f"{f.relative_to(ROOT)}:{line} ({room}) imports {target} ({other})")
    assert not wrong, "\n".join(wrong)
    assert set(ENVS_ROOMS) >= {_room(n) for n in mods if n.startswith("envs")}, "a room of envs/ has no rule here"


def test_no_import_cycles() -> None:
    """Tarjan's strongly connected components over module imports (lazy ones included)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for _, target in _imports(f):
            while target and target not in mods:
                target = target.rpartition(".")[0]
            # a package's __init__ importing its own submodules, or a module importing its package, is no cycle
            if target and target != m and not m.startswith(target + ".") and not target.startswith(m + "."):
                graph[m].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(" <-> ".join(sorted(comp)))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in graph:
        if v not in index:
            visit(v)
    assert not cycles, cycles


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
    for pkg in PACKAGES:
        for f in (ROOT / pkg).rglob("*.py"):
            if f.name in ("__init__.py", "__main__.py"):
                continue
            if f.name in seen:
                dupes.append(f"{f.relative_to(ROOT)} and {seen[f.name].relative_to(ROOT)}")
            seen[f.name] = f
    assert not dupes, dupes
