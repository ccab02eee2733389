"""``tensorcache-export-sb3``: turns a Stable-Baselines3 model saved with ``model.save()`` (PPO or MaskablePPO, with
``MlpPolicy`` or this project's ``CandidateActorCriticPolicy``) into a leaderboard entry folder: ``entry.json``,
``policy.safetensors`` + ``policy.json`` and a README.

The zip is never unpickled. Its ``data`` member is JSON (the classes SB3 pickled inside it are read only from the
names it writes beside them), and ``policy.pth`` is read with ``torch.load(weights_only=True)``, which accepts
tensors and plain containers only and refuses anything else. The env's observations are already scaled into
[-1, 1]; ``VecNormalize`` statistics are not in the zip, so do not export a model trained behind it. Say
``--candidates`` when the env used a rule other than its version's default.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import tyro

from envs.gym.episode import EPISODE_RULES
from envs.gym.features import OBSERVATION_VERSIONS, feature_tables, observation_size

Rule = Literal[tuple(EPISODE_RULES)]  # type: ignore[valid-type]
#: The most a model's members may take when read (the project's policies are far smaller).
MAX_MEMBER_BYTES = 256 * 2**20
_DEFAULT_RULE = {1: "lru", 2: "schedule"}  # each env version's default candidate rule


@dataclass(frozen=True)
class ExportSB3Config:
    """Turn an SB3 model .zip into a leaderboard entry folder (weights as safetensors; nothing unpickled)."""

    model: Annotated[Path, tyro.conf.Positional]
    """The model .zip written by SB3's model.save()."""
    out: Path
    """The entry folder to write (created; an existing folder is refused unless --force)."""
    name: str | None = None
    """The entry's name (default: the folder's name)."""
    candidates: Rule | None = None
    """The candidate rule of the env it was trained on (default: the env version's, lru for v1, schedule for v2)."""
    force: bool = False
    """Overwrite the policy files of an existing folder."""


def read_sb3_zip(path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``data`` JSON and the policy's tensors of an SB3 model file, read without unpickling.

    Raises:
        ValueError: On a file that is not an SB3 model zip, an oversized member, or a ``policy.pth`` holding
            anything but tensors.
    """
    import torch

    if not path.is_file():
        raise ValueError(f"{path}: no such model file")
    try:
        with zipfile.ZipFile(path) as zf:
            members = {i.filename: i for i in zf.infolist()}
            for need in ("data", "policy.pth"):
                if need not in members:
                    raise ValueError(f"{path}: not an SB3 model (no {need!r} member)")
                if members[need].file_size > MAX_MEMBER_BYTES:
                    raise ValueError(f"{path}: member {need!r} is {members[need].file_size} bytes; the limit is "
                                     f"{MAX_MEMBER_BYTES}")  # fmt: skip
            data = json.loads(zf.read("data"))
            raw = zf.read("policy.pth")
            info = members.get("system_info.txt")
            about = zf.read(info).decode("utf-8", "replace") if info is not None and info.file_size < 65536 else ""
    except zipfile.BadZipFile:
        raise ValueError(f"{path}: not a zip file (SB3 models are .zip)") from None
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ValueError(f"{path}: its 'data' member is not JSON") from None
    try:
        state = torch.load(io.BytesIO(raw), map_location="cpu", weights_only=True)
    except Exception as exc:  # weights_only refuses any object that is not a tensor or a plain container
        raise ValueError(f"{path}: policy.pth holds more than tensors ({type(exc).__name__}); refused") from None
    if not isinstance(data, dict) or not isinstance(state, dict):
        raise ValueError(f"{path}: unexpected layout (data or policy.pth is not a mapping)")
    version = re.search(r"Stable-Baselines3:\s*(\S+)", about)
    return data | {":sb3_version:": version.group(1) if version else None}, state


def _count(data: dict, key: str, field: str) -> int:
    """An integer SB3 wrote beside a pickled space (``n`` of a Discrete, one dimension of a Box shape)."""
    value = (data.get(key) or {}).get(field)
    text = json.dumps(value) if not isinstance(value, str) else value
    numbers = [int(x) for x in re.findall(r"\d+", text)]
    if len(numbers) != 1:
        raise ValueError(f"the model's {key} has no single {field} ({value!r}): is it a TensorCache env model?")
    return numbers[0]


def _activation(data: dict) -> str:
    from agents.mlp_actor import ACTIVATIONS

    kwargs = data.get("policy_kwargs") or {}
    text = str(kwargs.get("activation_fn", "")) if isinstance(kwargs, dict) else ""
    if not text:
        return "tanh"  # SB3's default for PPO's MlpPolicy
    by_class = {cls.__name__: name for name, cls in ACTIVATIONS.items()}  # "<class 'torch.nn....ReLU'>" -> relu
    name = by_class.get(text.rstrip("'>").rsplit(".", 1)[-1])
    if name is None:
        raise ValueError(f"activation {text!r} is not one of {', '.join(ACTIVATIONS)}")
    return name


def network_of(data: dict, state: dict):
    """The inference network and observation version of an SB3 policy's tensors: an
    :class:`~agents.mlp_actor.MLPActor` for ``MlpPolicy``, a :class:`~agents.candidate_net.CandidateNet` for
    ``CandidateActorCriticPolicy``."""
    import torch

    k, size = _count(data, "action_space", "n"), _count(data, "observation_space", "_shape")
    versions = [v for v in OBSERVATION_VERSIONS if observation_size(k, v) == size]
    if not versions:
        raise ValueError(f"observations of {size} values with {k} candidates match no TensorCache observation version")
    version = versions[0]
    cand, glob = feature_tables(version)
    bad = [n for n, t in state.items() if not isinstance(t, torch.Tensor) or not bool(torch.isfinite(t).all())]
    if bad:
        raise ValueError(f"tensor {bad[0]!r} is not a finite tensor")
    if "action_net.weight" in state:  # MlpPolicy: mlp_extractor.policy_net (Linear, act, ...) then action_net
        from agents.mlp_actor import MLPActor, MLPConfig

        if any(n.startswith(("features_extractor.", "pi_features_extractor.")) for n in state):
            raise ValueError("the policy has a trained features extractor; only MlpPolicy's flatten is supported")
        hidden = sorted({int(m.group(1)) for n in state if (m := re.match(r"mlp_extractor\.policy_net\.(\d+)\.weight$", n))})
        names = [f"mlp_extractor.policy_net.{i}" for i in hidden] + ["action_net"]
        widths = (int(state[f"{names[0]}.weight"].shape[1]), *(int(state[f"{n}.weight"].shape[0]) for n in names))
        net = MLPActor(MLPConfig(k, widths, _activation(data), len(cand), len(glob)))
        layers = [i for i, m in enumerate(net.layers) if isinstance(m, torch.nn.Linear)]
        mine = {f"layers.{i}.{p}": state[f"{n}.{p}"] for i, n in zip(layers, names, strict=True) for p in ("weight", "bias")}
    else:  # CandidateActorCriticPolicy: the CandidateNet is the mlp_extractor
        from agents.candidate_net import CandidateNet, NetConfig

        if "mlp_extractor.actor_body.0.weight" not in state:
            raise ValueError("the policy is neither SB3's MlpPolicy nor the project's CandidateActorCriticPolicy")
        hidden = int(state["mlp_extractor.actor_body.0.weight"].shape[0])
        net = CandidateNet(NetConfig(k=k, hidden=hidden, n_cand_features=len(cand), n_global_features=len(glob)))
        mine = {n.removeprefix("mlp_extractor."): t for n, t in state.items() if n.startswith("mlp_extractor.")}
    try:
        net.load_state_dict(mine, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the tensors do not fit the network: {str(exc).splitlines()[0]}") from None
    return net.eval(), version


def export_sb3(cfg: ExportSB3Config) -> Path:
    """Writes the entry folder of ``cfg.model`` and returns it."""
    from agents.ppo import CONFIG, WEIGHTS, PPOPolicy, export_policy
    from envs.io.atomic import write_text_atomic

    name = cfg.name or cfg.out.name
    if not re.fullmatch(r"[a-z0-9][a-z0-9._-]{0,63}", name):
        raise ValueError(f"entry name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
    if cfg.out.exists() and (any(cfg.out.iterdir()) if cfg.out.is_dir() else True) and not cfg.force:
        raise ValueError(f"{cfg.out} exists and is not empty (add --force to overwrite its policy files)")
    data, state = read_sb3_zip(cfg.model)
    net, version = network_of(data, state)
    rule = cfg.candidates or _DEFAULT_RULE[version]
    digest = hashlib.sha256(cfg.model.read_bytes()).hexdigest()
    meta = {"source": "sb3", "model_sha256": digest, "env_version": f"Eviction-v{version}",
            "sb3_version": data[":sb3_version:"]}  # fmt: skip
    export_policy(net, rule, cfg.out, name=name, meta=meta, observation_version=version)
    PPOPolicy.load(cfg.out, name=name)  # what the leaderboard will load, checked now
    write_text_atomic(cfg.out / "entry.json", json.dumps({"name": name, "kind": "exported-net", "deterministic": True}))
    if not (cfg.out / "README.md").exists():
        write_text_atomic(cfg.out / "README.md", f"# {name}\n\nExported from the SB3 model `{cfg.model.name}` (SHA-256 "
                          f"{digest[:16]}…) by `tensorcache-export-sb3`: observation version {version}, {rule} "
                          f"candidates, K = {net.cfg.k}. Files: {WEIGHTS}, {CONFIG}.\n")  # fmt: skip
    return cfg.out


def main(argv: list[str] | None = None) -> int:
    from envs.cli import run_cli

    cfg = tyro.cli(ExportSB3Config, prog="tensorcache-export-sb3", args=argv)

    def body() -> int:
        out = export_sb3(cfg)
        print(f"wrote entry {out} (score it: tensorcache-leaderboard --entries {out.parent} --agents {cfg.name or out.name})")
        return 0

    return run_cli(body)


if __name__ == "__main__":
    raise SystemExit(main())
