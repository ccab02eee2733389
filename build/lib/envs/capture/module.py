"""Capture of any ``torch.nn.Module``: its repeated blocks become layers, and :func:`capture` records ``steps``
iterations (forward, and for training backward and an optimizer step) on the ``meta`` device."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_leaves

from envs.capture.recorder import AccessRecorder, Registry, build_trace
from envs.capture.train_state import TrainStepState, register_params
from envs.trace import Kind, Phase, Trace


def block_index(module: torch.nn.Module) -> dict[str, int]:
    """The model's repeated blocks, numbered in order: the children of the shallowest ``ModuleList`` /
    ``Sequential`` containers of two or more modules (``layers.N``, ``h.N``, ``blocks.N``, ``layer.N``, ResNet
    stages ``layer1.0`` ...). Maps each block's path to its index."""
    lists = (torch.nn.ModuleList, torch.nn.Sequential)
    containers = [(n, m) for n, m in module.named_modules() if isinstance(m, lists) and len(m) >= 2]
    if not containers:
        return {}
    depth = min((n.count(".") + 1) if n else 0 for n, _ in containers)
    blocks: dict[str, int] = {}
    for name, m in containers:
        if ((name.count(".") + 1) if name else 0) != depth:
            continue
        for child, _ in m.named_children():
            blocks[f"{name}.{child}" if name else child] = len(blocks)
    return blocks


def block_layers(module: torch.nn.Module) -> tuple[int, Callable[[str], int], Callable[[frozenset[str]], int]]:
    """(number of blocks, layer of a parameter name, layer of the module-tracker paths of an op) for ``module``:
    stem = 0, block i = i + 1, head = blocks + 1 (parameters before the first block are the stem)."""
    blocks = block_index(module)
    n_blocks = len(blocks)
    names = [n for n, _ in module.named_parameters()]
    block_params = [i for i, n in enumerate(names) if _layer_of_name(blocks, n, True) not in (0, n_blocks + 1)]
    first_block = block_params[0] if block_params else len(names)
    position = {n: i for i, n in enumerate(names)}

    def layer_of_param(pname: str) -> int:
        return _layer_of_name(blocks, pname, position[pname] < first_block)

    def layer_of_paths(parents: frozenset[str]) -> int:
        found = [_layer_of_name(blocks, p.split(".", 1)[1], True) for p in parents if "." in p]
        inner = [x for x in found if 0 < x <= n_blocks]
        return max(inner) if inner else (0 if not found else max(found))

    return n_blocks, layer_of_param, layer_of_paths


def _layer_of_name(blocks: dict[str, int], name: str, before_first: bool) -> int:
    parts = name.split(".")
    for i in range(len(parts), 0, -1):
        hit = blocks.get(".".join(parts[:i]))
        if hit is not None:
            return hit + 1
    return 0 if before_first else len(blocks) + 1


def capture(
    module: torch.nn.Module,
    make_inputs: Callable[[int], Any],
    *,
    train: bool = True,
    optimizer: str | None = "adamw",
    loss: Callable[[Any], torch.Tensor] | None = None,
    steps: int = 1,
    dtype: torch.dtype | None = None,
    name: str | None = None,
    fake: bool = False,
) -> Trace:
    """Records the tensor accesses of ``steps`` iterations of ``module`` as a :class:`Trace`, without weights or
    real memory: the module runs on the ``meta`` device (moved there if it is not).

    Args:
        module: Any ``torch.nn.Module``.
        make_inputs: ``make_inputs(step)`` returns the inputs of one step on the meta device: a tensor, a tuple of
            positional arguments, or a dict of keyword arguments.
        train: Forward, backward and optimizer step (True) or forward only under ``no_grad`` (False).
        optimizer: ``"adamw"``, ``"sgd"`` or None (no optimizer step) when training.
        loss: Maps the output to a scalar loss (default: the sum of the first output tensor, in float32).
        steps: Iterations to record.
        dtype: Cast the parameters to this dtype first (e.g. ``torch.bfloat16``).
        name: Workload name recorded in the metadata (default: the module's class name).
        fake: The module and the inputs are ``FakeTensor`` s of an active ``FakeTensorMode`` (as Hugging Face
            models need, see :mod:`envs.capture.hf`): they are left where they are instead of moved to ``meta``.

    Raises:
        ValueError: On a bad argument.
    """
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if optimizer not in ("adamw", "sgd", None):
        raise ValueError(f"optimizer must be 'adamw', 'sgd' or None, got {optimizer!r}")
    if not fake:
        module = module.to("meta")
    if dtype is not None:
        module = module.to(dtype)
    module.train(train)
    n_blocks, layer_of_param, layer_of_paths = block_layers(module)
    names = [n for n, _ in module.named_parameters()]
    rec, registry, state = AccessRecorder(n_blocks, layer_of_paths=layer_of_paths), Registry(), TrainStepState()
    layers = register_params(module, rec, registry, layer_of_param)
    opt = None
    if train and optimizer is not None and names:
        cls = torch.optim.AdamW if optimizer == "adamw" else torch.optim.SGD
        opt = cls(module.parameters(), lr=1e-4, foreach=True, **({"momentum": 0.9} if optimizer == "sgd" else {}))
    with rec:
        for step in range(steps):
            rec.iteration = step
            inputs = make_inputs(step)
            if isinstance(inputs, dict):
                args, kwargs = (), inputs
            else:
                args, kwargs = ((inputs,) if isinstance(inputs, torch.Tensor) else tuple(inputs)), {}
            for t in tree_leaves((args, kwargs)):
                if isinstance(t, torch.Tensor):
                    if t.device.type != "meta" and not fake:
                        raise ValueError("make_inputs must return tensors on the meta device (device='meta')")
                    registry.add(rec.uid(t), Kind.INPUT, 0)
            rec.phase = Phase.FORWARD
            if not train:
                with torch.no_grad():
                    out = module(*args, **kwargs)
                del out
                continue
            out = module(*args, **kwargs)
            first = next(x for x in tree_leaves(out) if isinstance(x, torch.Tensor))
            value = loss(out) if loss is not None else first.float().sum()
            del out
            rec.phase = Phase.BACKWARD
            value.backward()
            del value
            state.register_grads(module, rec, registry, layers)
            if opt is not None:
                rec.phase = Phase.OPTIMIZER
                opt.step()
                state.register_optimizer_state(module, opt, rec, registry, layers)
                opt.zero_grad(set_to_none=True)
    rec.close()
    dtypes = {p.dtype for p in module.parameters() if p.is_floating_point()}
    meta = {
        "workload": name or type(module).__name__,
        "dtype": str(dtypes.pop()).removeprefix("torch.") if len(dtypes) == 1 else None,
        "generator": "envs.capture.capture",
        "config": {"train": train, "optimizer": optimizer, "steps": steps, "dtype": str(dtype) if dtype else None,
                   "blocks": n_blocks, "parameters": int(sum(p.numel() for p in module.parameters()))},
    }  # fmt: skip
    return build_trace(rec, registry, meta)
