"""What one aten op costs: its floating-point operations and the device-memory bytes it reads and writes.

FLOPs come from PyTorch's own formulas (``torch.utils.flop_counter``: matmuls, convolutions, attention; 2 per
multiply-add; elementwise ops count 0), plus formulas for the CPU flash-attention kernels that Hugging Face models
take under ``FakeTensorMode`` on CPU, which PyTorch's table leaves out (they are counted as the fused attention ops
are: 4·b·h·s_q·s_k·d forward, 10·b·h·s_q·s_k·d backward, causal or not). Bytes are each distinct tensor's own
size (a view counts its elements, never more than its storage), summed over what the op reads and writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch.utils.flop_counter import flop_registry, sdpa_backward_flop_count, sdpa_flop_count

_aten = torch.ops.aten


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(s) for s in t.shape)


def _cpu_flash_forward(query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    return sdpa_flop_count(_shape(query), _shape(key), _shape(value))


def _cpu_flash_backward(grad_out: Any, query: Any, key: Any, value: Any, *args: Any, out_val: Any = None, **kwargs: Any) -> int:
    return sdpa_backward_flop_count(_shape(grad_out), _shape(query), _shape(key), _shape(value))


#: Overload packet -> ``formula(*args, out_val=out, **kwargs)`` giving the op's FLOPs (read-only).
FLOP_FORMULAS: Mapping[Any, Callable[..., int]] = MappingProxyType(
    {
        **flop_registry,
        _aten._scaled_dot_product_flash_attention_for_cpu: _cpu_flash_forward,
        _aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_flash_backward,
    }
)


def op_flops(func: Any, args: tuple, kwargs: Mapping[str, Any], out: Any) -> int:
    """FLOPs of one call of the aten overload ``func`` (0 for ops without a formula)."""
    formula = FLOP_FORMULAS.get(func.overloadpacket)
    if formula is None:
        return 0
    return int(formula(*args, **kwargs, out_val=out))


def tensor_bytes(t: torch.Tensor) -> int:
    """Bytes an op touches reading or writing ``t``: its elements, at most its storage (an expanded view reads the
    storage once)."""
    return min(t.numel() * t.element_size(), t.untyped_storage().nbytes())


def touched_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Sum of :func:`tensor_bytes` over the distinct tensors of ``tensors``."""
    seen: set[int] = set()
    total = 0
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            total += tensor_bytes(t)
    return total
