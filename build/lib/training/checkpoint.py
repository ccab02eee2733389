"""Resumable checkpoints that never unpickle.

A checkpoint is a folder ``checkpoints/step-<n>/`` holding ``policy.safetensors`` (the SB3 policy's tensors),
``optimizer.safetensors`` + ``optimizer.json`` (the Adam state as tensors, the rest as JSON) and
``trainer_state.json``. ``checkpoints/latest.json`` names the newest complete one and is replaced atomically after
the folder is written, so a kill at any moment leaves the previous checkpoint loadable; the one before it is kept
as a fall-back, older ones are removed. Loading reads tensors and JSON only: a crafted file cannot run code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from envs.io.atomic import write_text_atomic

KEEP = 2


class CheckpointError(ValueError):
    """No loadable checkpoint."""


def _flatten_optimizer(state: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """(tensors, json) of a torch optimizer state_dict."""
    import torch

    tensors, scalars = {}, {}
    for pid, slots in state["state"].items():
        for key, value in slots.items():
            name = f"{pid}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, Any], meta: dict[str, Any]) -> dict:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *meta["scalars"].items()]:
        pid, key = name.split(".", 1)
        state.setdefault(int(pid), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def save(model, run_dir: Path, trainer_state: dict) -> Path:
    """Writes a checkpoint of ``model`` (an SB3 model) and points ``latest.json`` at it."""
    from safetensors.torch import save_file

    root = run_dir / "checkpoints"
    step = int(model.num_timesteps)
    folder = root / f"step-{step:012d}"
    tmp = root / f".tmp-step-{step:012d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.policy.state_dict().items()}, str(tmp / "policy.safetensors"))
    tensors, meta = _flatten_optimizer(model.policy.optimizer.state_dict())
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    (tmp / "optimizer.json").write_text(json.dumps(meta))
    state = {**trainer_state, "num_timesteps": step, "n_updates": int(model._n_updates)}
    (tmp / "trainer_state.json").write_text(json.dumps(state, indent=2, default=float))
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    history = _history(root)
    history = [h for h in history if h != folder.name] + [folder.name]
    write_text_atomic(root / "latest.json", json.dumps({"latest": folder.name, "history": history[-KEEP:]}))
    for old in history[:-KEEP]:
        shutil.rmtree(root / old, ignore_errors=True)
    return folder


def _history(root: Path) -> list[str]:
    try:
        return list(json.loads((root / "latest.json").read_text()).get("history", []))
    except (OSError, ValueError, AttributeError):
        return sorted(p.name for p in root.glob("step-*") if p.is_dir())


def load_latest(model, run_dir: Path) -> dict:
    """Restores the newest checkpoint that loads (falling back to the previous one); returns its trainer state.

    Raises:
        CheckpointError: If none loads.
    """
    root = run_dir / "checkpoints"
    problems = []
    for name in reversed(_history(root)):
        folder = root / name
        if not name.startswith("step-") or folder.parent != root or not folder.is_dir():
            continue
        try:
            state = json.loads((folder / "trainer_state.json").read_text())
            if not isinstance(state, dict):
                raise CheckpointError(f"{folder}: trainer_state.json is not an object")
            restore(model, folder, state)
            return state
        except (OSError, ValueError) as exc:
            problems.append(str(exc).splitlines()[0])
    raise CheckpointError(f"{run_dir}: no loadable checkpoint under checkpoints/ ({'; '.join(problems) or 'none found'})")


def restore(model, folder: Path, state: dict) -> None:
    """Loads a checkpoint's tensors into ``model`` (built from the run's own config) and its step counters."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        model.policy.load_state_dict(load_file(str(folder / "policy.safetensors")), strict=True)
        opt_meta = json.loads((folder / "optimizer.json").read_text())
        model.policy.optimizer.load_state_dict(_unflatten_optimizer(load_file(str(folder / "optimizer.safetensors")), opt_meta))
    except (SafetensorError, RuntimeError, OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{folder}: checkpoint does not match the network ({str(exc).splitlines()[0]})") from None
    model.num_timesteps = int(state["num_timesteps"])
    model._n_updates = int(state.get("n_updates", 0))
