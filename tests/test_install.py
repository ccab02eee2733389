"""The package as a user installs it: a wheel built from this tree holds every entry's files (the LLM entries'
shipped rows too), imports from where it was installed, and keeps numba's compiled kernels out of
``site-packages`` (files left there outlive ``pip uninstall`` and shadow a later editable install)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow  # builds a wheel

CHECK = r"""
import json, sys
from pathlib import Path
import envs, eval
from eval.leaderboard.entries import discover
from envs.trace import Trace
found = discover()
Trace.from_requests([5, 9, 5], [8, 16, 8])  # compiles (and caches) the trace kernels
print(json.dumps({
    "envs": envs.__file__,
    "entries": sorted(found.entries),
    "refused": found.refused,
    "files": {n: sorted(p.name for p in e.directory.iterdir()) for n, e in found.entries.items()},
}))
"""


def test_a_wheel_installs_everything_and_caches_kernels_outside_site_packages(tmp_path: Path) -> None:
    src = tmp_path / "src"
    skip = shutil.ignore_patterns(".git", ".venv", "runs", "artifacts", "__pycache__", "*.egg-info", "build", "*.nbi",
                                  "*.nbc", ".pytest_cache", ".ruff_cache", "tests")  # fmt: skip
    shutil.copytree(ROOT, src, ignore=skip)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(src)], check=True)
    (wheel,) = (tmp_path / "dist").glob("tensorcache_gym-*.whl")
    site = tmp_path / "site-packages"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True)
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    env |= {"PYTHONPATH": str(site), "XDG_CACHE_HOME": str(tmp_path / "cache"), "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", CHECK], cwd=tmp_path, env=env, capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["envs"].startswith(str(site)), got["envs"]  # the installed copy, not this checkout
    assert not got["refused"], got["refused"]
    shipped = {p.parent.name for p in (ROOT / "eval" / "leaderboard").glob("*/entry.json")}
    assert set(got["entries"]) == shipped
    for name in shipped:  # every file an entry folder ships in git is in the wheel
        want = sorted(p.name for p in (ROOT / "eval" / "leaderboard" / name).iterdir() if p.is_file())
        assert set(want) <= set(got["files"][name]), (name, set(want) - set(got["files"][name]))
    assert "results.csv" in got["files"]["llm"]
    assert not list(site.rglob("*.nbi")), "numba wrote its cache into site-packages"
    assert list((tmp_path / "cache" / "tensorcache" / "numba").rglob("*.nbi"))
