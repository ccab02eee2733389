"""Traces of Hugging Face causal language models built from a ``config.json`` alone (no weights, no memory).

The model is built with ``AutoModelForCausalLM.from_config`` under ``FakeTensorMode`` (transformers' mask code
calls ``.item()``, which the bare meta device refuses; fake tensors carry shapes, and transformers skips its
data-dependent checks while tracing). The attention implementation is chosen explicitly (``sdpa`` by default: the
fused kernel, no sequence x sequence score matrix on CPU fake tensors; ``eager`` materialises it). Reads, writes
and frees are recorded by storage with :class:`envs.capture.AccessRecorder`, and tensors are tagged by kind
(weights, gradients, optimizer state, KV cache, inputs; activations and temporaries by lifetime).

Training records forward + backward + AdamW steps; serving records a prefill of ``seq`` tokens and ``decode_steps``
one-token steps that read and grow the KV cache. MoE models trace with the router computed from fake values (so
expert choice is not meaningful) and, in transformers 5, all experts of a layer run as one grouped op: per-expert
reads are not visible yet; that grouped op traces in bfloat16 only, so MoE configs need ``dtype="bfloat16"`` (the
per-expert loop has data-dependent shapes that fake tensors cannot size).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from envs.trace import Kind, Phase, Trace

TASKS = ("train", "infer")
DTYPES = ("float32", "bfloat16", "float16")
#: Sizes above these are refused as absurd for a config that should trace in seconds.
LIMITS = {"hidden_size": 65_536, "num_hidden_layers": 512, "vocab_size": 4_000_000, "intermediate_size": 1_048_576,
          "num_attention_heads": 1024}  # fmt: skip
MAX_PARAMETERS = 2 * 10**12
#: Names configs give their number of blocks, and per-block lists that must be cut with it.
_LAYER_COUNT_KEYS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers")
_PER_LAYER_KEYS = ("layer_types", "sliding_window_pattern_list", "mlp_only_layers")


class HFConfigError(ValueError):
    """A config that cannot be traced (the message says why, in one line)."""


def load_config(path: str | Path, layers: int | None = None):
    """A transformers config from a ``config.json`` file or a directory holding one (see :func:`read_config`)."""
    return read_config(path, layers)[0]


def read_config(path: str | Path, layers: int | None = None) -> tuple[Any, str]:
    """A transformers config from a ``config.json`` file, a directory holding one, or the name of a bundled example
    (:data:`EXAMPLE_CONFIGS`), and the SHA-256 of the
    settings it was built from (sorted JSON: the same settings give the same digest wherever the file lies).

    Args:
        layers: Keep only the first ``layers`` blocks (the layer count under whichever name the config uses, and
            per-layer lists such as ``layer_types`` cut to match).

    Raises:
        HFConfigError: On a missing file, bad JSON, a missing ``model_type``, an unknown model type, absurd sizes,
            or a config transformers refuses.
    """
    from transformers import AutoConfig

    p = Path(path)
    if not p.exists() and str(path) in EXAMPLE_CONFIGS:  # a bundled example by name
        p = EXAMPLE_CONFIGS[str(path)]
    file = p / "config.json" if p.is_dir() else p
    try:
        raw = json.loads(file.read_text())
    except OSError:
        known = f" (or one of the examples: {', '.join(EXAMPLE_CONFIGS)})" if EXAMPLE_CONFIGS else ""
        raise HFConfigError(f"{file}: no such config file{known}") from None
    except (ValueError, UnicodeDecodeError):
        raise HFConfigError(f"{file}: not a JSON config") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise HFConfigError(f"{file}: a config.json needs a 'model_type' (e.g. 'llama', 'mistral', 'gpt2')")
    for key, limit in LIMITS.items():
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= limit):
            raise HFConfigError(f"{file}: {key} = {value!r} is not an integer in 1..{limit}")
    if layers is not None:
        top = LIMITS["num_hidden_layers"]
        if isinstance(layers, bool) or not isinstance(layers, int) or not 1 <= layers <= top:
            raise HFConfigError(f"layers must be an integer in 1..{top}, got {layers!r}")
        names = [k for k in _LAYER_COUNT_KEYS if k in raw] or ["num_hidden_layers"]
        for key in names:
            raw[key] = layers
        for key, value in list(raw.items()):
            if key in _PER_LAYER_KEYS and isinstance(value, list) and len(value) >= layers:
                raw[key] = value[:layers]
    try:
        config = AutoConfig.for_model(**raw)
    except Exception as exc:  # transformers' validators raise several types; each is the user's config
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HFConfigError(f"{file}: {message}") from None
    return config, hashlib.sha256(json.dumps(raw, sort_keys=True).encode()).hexdigest()


def _is_moe(config) -> bool:
    return any(getattr(config, k, None) for k in ("num_local_experts", "num_experts", "n_routed_experts"))


def _fake_mode():
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.fx.experimental.symbolic_shapes import ShapeEnv

    return FakeTensorMode(allow_non_fake_inputs=True, shape_env=ShapeEnv())


def build_model(config, dtype: str = "bfloat16", attn: str = "sdpa"):
    """The model of ``config`` with fake parameters, inside a fresh ``FakeTensorMode`` (returned with it)."""
    import torch
    from transformers import AutoModelForCausalLM

    if dtype not in DTYPES:
        raise HFConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if _is_moe(config) and dtype != "bfloat16":
        raise HFConfigError(
            f"{config.model_type} is a mixture of experts: transformers runs its experts as one grouped matmul, which "
            "traces in bfloat16 only (use --dtype bfloat16)"
        )
    mode = _fake_mode()
    with mode:
        try:
            model = AutoModelForCausalLM.from_config(config, attn_implementation=attn, dtype=getattr(torch, dtype))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HFConfigError(f"{config.model_type}: {message}") from None
    n_params = sum(p.numel() for p in model.parameters())
    if n_params > MAX_PARAMETERS:
        raise HFConfigError(f"{config.model_type}: {n_params} parameters is above the limit of {MAX_PARAMETERS}")
    return model, mode


#: Example configs written from public model cards (``model_configs/``): name -> file.
EXAMPLE_CONFIGS = {p.stem: p for p in sorted((Path(__file__).parent / "model_configs").glob("*.json"))}


def example_config(name: str) -> Path:
    """The bundled ``config.json`` of example model ``name`` (:data:`EXAMPLE_CONFIGS`).

    Raises:
        HFConfigError: On an unknown name (naming the examples).
    """
    if name not in EXAMPLE_CONFIGS:
        raise HFConfigError(f"unknown example model {name!r}; valid: {', '.join(EXAMPLE_CONFIGS)}")
    return EXAMPLE_CONFIGS[name]


def capture_hf(
    config_path: str | Path,
    *,
    task: str = "train",
    layers: int | None = None,
    seq: int = 512,
    batch: int = 1,
    steps: int = 1,
    decode_steps: int = 8,
    dtype: str = "bfloat16",
    attn: str = "sdpa",
) -> Trace:
    """The trace of one Hugging Face config (see the module docstring).

    Args:
        config_path: A ``config.json`` or a directory holding one.
        task: ``train`` (forward, backward, AdamW; ``steps`` of them) or ``infer`` (prefill + ``decode_steps``).
        layers: Trace only the first ``layers`` blocks (see :func:`load_config`); None = all of them.
        seq, batch: Tokens per sequence (the prompt, when serving) and sequences per step.
        dtype: Parameter dtype. ``attn``: ``sdpa`` or ``eager``.

    Raises:
        HFConfigError: On a bad config or argument.
    """
    import torch

    from envs.capture.module import capture

    if task not in TASKS:
        raise HFConfigError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    checks = (("seq", seq, 1 << 20), ("batch", batch, 4096), ("steps", steps, 64), ("decode_steps", decode_steps, 4096))
    for name, value, top in checks:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= top:
            raise HFConfigError(f"{name} must be an integer in 1..{top}, got {value!r}")
    config, digest = read_config(config_path, layers)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    needed = seq + (decode_steps if task == "infer" else 0)
    if limit and needed > limit:
        raise HFConfigError(f"{config.model_type} has {limit} positions; the sequence needs {needed}")
    model, mode = build_model(config, dtype, attn)
    # everything here determines the trace, and nothing else does (no path, no clock): one config, one hash
    meta = {"source": "huggingface", "model_type": config.model_type, "task": task, "seq": seq, "batch": batch,
            "dtype": dtype, "attn_implementation": attn, "config_sha256": digest,
            "layers": int(config.num_hidden_layers)}  # fmt: skip
    if task == "train":
        meta["steps"] = steps
    else:
        meta["decode_steps"] = decode_steps
    with mode:
        if task == "train":

            def inputs(step: int) -> dict[str, Any]:
                ids = torch.zeros(batch, seq, dtype=torch.long)
                return {"input_ids": ids, "labels": ids}

            trace = capture(model, inputs, loss=lambda out: out.loss, steps=steps, fake=True, name=config.model_type)
        else:
            trace = _capture_serving(model, seq, batch, decode_steps)
    return Trace.from_arrays(trace.arrays(), {**trace.meta, **meta})


def _capture_serving(model, seq: int, batch: int, decode_steps: int) -> Trace:
    """Prefill then ``decode_steps`` one-token steps with transformers' KV cache (inside the caller's fake mode)."""
    import torch

    from envs.capture.module import block_layers
    from envs.capture.recorder import AccessRecorder, Registry, build_trace
    from envs.capture.train_state import register_params

    model.eval()
    n_blocks, layer_of_param, layer_of_paths = block_layers(model)
    rec, registry = AccessRecorder(n_blocks, layer_of_paths=layer_of_paths), Registry()
    register_params(model, rec, registry, layer_of_param)
    with rec, torch.no_grad():
        rec.phase, rec.iteration = Phase.PREFILL, 0
        ids = torch.zeros(batch, seq, dtype=torch.long)
        registry.add(rec.uid(ids), Kind.INPUT, 0)
        out = model(input_ids=ids, use_cache=True)
        cache = getattr(out, "cache", None) or out.past_key_values
        _tag_cache(cache, rec, registry)
        del out
        rec.phase = Phase.DECODE
        for step in range(1, decode_steps + 1):
            rec.iteration = step
            tok = torch.zeros(batch, 1, dtype=torch.long)
            registry.add(rec.uid(tok), Kind.INPUT, 0)
            out = model(input_ids=tok, cache=cache, use_cache=True)
            cache = getattr(out, "cache", None) or out.past_key_values
            _tag_cache(cache, rec, registry)
            del out
    rec.close()
    return build_trace(rec, registry, {"workload": "hf-infer"})


def _tag_cache(cache, rec, registry) -> None:
    import torch
    from torch.utils._pytree import tree_leaves

    layers = getattr(cache, "layers", None)
    items = [(i, layer) for i, layer in enumerate(layers)] if layers is not None else []
    for i, layer in items:
        for t in tree_leaves([getattr(layer, "keys", None), getattr(layer, "values", None)]):
            if isinstance(t, torch.Tensor):
                registry.add(rec.uid(t), Kind.KV_CACHE, i + 1)
