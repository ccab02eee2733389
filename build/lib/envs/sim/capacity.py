"""Cache capacities: parsing, resolving a capacity spec against a trace, and checking it is feasible.

Every entry point (the simulator, the env, the CLIs, the suites, the dashboard) goes through
:func:`resolve_capacity`, so a capacity means the same thing everywhere:

- an integer, or a string with a unit (``4096``, ``"128MiB"``, ``"1.5GiB"``): bytes;
- a float in (0, 1], or the string ``"peak:0.5"``: that fraction of the trace's peak live bytes;
- :class:`Headroom` (``Headroom(0.3)``), or the string ``"headroom:0.3"``: that fraction of the way from the
  tightest feasible cache (the largest op's operand bytes) to one holding the peak live bytes. The suites' tasks
  are named by headroom (``gpt2-serve@0.3`` is ``"headroom:0.3"``), so a bare float and a task's number differ.

In tensor mode a capacity below the largest op's operand bytes is refused, since all operands of an op must be
resident together.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from envs.sim.errors import SimError

if TYPE_CHECKING:
    from envs.sim.prepared import PreparedTrace

#: Largest capacity accepted (the engine counts bytes in int64).
MAX_CAPACITY = 2**62

_UNITS = {"": 1, "b": 1, "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40,
          "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}  # fmt: skip


@dataclass(frozen=True)
class Headroom:
    """A capacity given as a headroom fraction in [0, 1] (see the module docstring)."""

    fraction: float

    def __post_init__(self) -> None:
        f = self.fraction
        if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) or not 0.0 <= float(f) <= 1.0:
            raise SimError(f"headroom fraction must be a number in [0, 1], got {f!r}")


CapacitySpec = int | float | str | Headroom


def parse_capacity(text: str | int) -> int:
    """Parses a byte count: an integer or ``'128MiB'``, ``'1.5GiB'``, ``'4096'``.

    Raises:
        SimError: If the value does not parse, is not positive, or exceeds :data:`MAX_CAPACITY`.
    """
    if isinstance(text, bool):
        raise SimError(f"capacity must be a byte count, got {text!r}")
    if isinstance(text, (int, np.integer)):
        value = int(text)
    elif isinstance(text, str):
        m = re.fullmatch(r"\s*([+-]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([a-zA-Z]*)\s*", text)
        if not m or m.group(2).lower() not in _UNITS:
            raise SimError(f"capacity {text!r} does not parse (use e.g. 4096, 128MiB, 1.5GiB)")
        number = float(m.group(1)) * _UNITS[m.group(2).lower()]
        if not math.isfinite(number) or number > MAX_CAPACITY:
            raise SimError(f"capacity {text!r} exceeds the largest supported capacity of 2**62 bytes")
        value = int(number)
    else:
        raise SimError(f"capacity must be a byte count or a string such as '4GiB', got {text!r}")
    if value <= 0:
        raise SimError(f"capacity must be positive, got {text!r}")
    if value > MAX_CAPACITY:
        raise SimError(f"capacity {text!r} exceeds the largest supported capacity of 2**62 bytes")
    return value


def _named_fraction(spec: CapacitySpec) -> CapacitySpec:
    """``"headroom:0.3"`` as ``Headroom(0.3)`` and ``"peak:0.5"`` as ``0.5``; anything else unchanged."""
    if isinstance(spec, str) and ":" in spec:
        name, _, value = spec.partition(":")
        name = name.strip().lower()
        if name not in ("headroom", "peak"):
            raise SimError(f"capacity {spec!r} does not parse (use bytes such as 4GiB, headroom:0.3 or peak:0.5)")
        try:
            fraction = float(value)
        except ValueError:
            raise SimError(f"capacity {spec!r}: {value.strip()!r} is not a number") from None
        return Headroom(fraction) if name == "headroom" else fraction
    return spec


def describe_capacity(spec: CapacitySpec) -> str:
    """The spec in words that say what it means: ``"headroom:0.3"``, ``"peak:0.5"`` or the bytes given."""
    spec = _named_fraction(spec)
    if isinstance(spec, Headroom):
        return f"headroom:{float(spec.fraction):g}"
    if isinstance(spec, (float, np.floating)):
        return f"peak:{float(spec):g}"
    return str(spec)


def check_capacity_spec(spec: CapacitySpec) -> None:
    """Checks a capacity spec without a trace (fails early, before any trace is generated).

    Raises:
        SimError: On a spec that no trace could resolve.
    """
    spec = _named_fraction(spec)
    if isinstance(spec, Headroom):
        return
    if isinstance(spec, (float, np.floating)):
        if not 0.0 < float(spec) <= 1.0:  # NaN fails this too
            raise SimError(f"a fractional capacity must be in (0, 1], got {spec!r}")
        return
    parse_capacity(spec)


def headroom_capacity(prepared: PreparedTrace, fraction: float) -> int:
    """Capacity ``fraction`` of the way from the tightest feasible cache to one holding the peak live bytes.

    The tightest feasible capacity is the largest op's operand bytes (tensor mode; the largest tensor in classic
    mode); ``fraction = 1`` holds every live tensor, so no eviction is needed.
    """
    fraction = Headroom(fraction).fraction
    floor = prepared.op_bytes_max
    peak = max(prepared.peak_live_bytes, floor)
    return max(int(floor + float(fraction) * (peak - floor)), 1)


def check_feasible(prepared: PreparedTrace, capacity: int) -> None:
    """Raises SimError when (tensor mode) the largest op's operands do not fit in ``capacity`` bytes."""
    if not prepared.classic and prepared.op_bytes_max > capacity:
        raise SimError(
            f"capacity {capacity} bytes cannot hold op {prepared.op_bytes_argmax}, whose operands need "
            f"{prepared.op_bytes_max} bytes together"
        )


def resolve_capacity(spec: CapacitySpec, prepared: PreparedTrace) -> int:
    """Bytes for ``spec`` on ``prepared`` (see the module docstring), checked for feasibility.

    Raises:
        SimError: On a malformed spec or an infeasible capacity.
    """
    check_capacity_spec(spec)
    spec = _named_fraction(spec)
    if isinstance(spec, Headroom):
        cap = headroom_capacity(prepared, spec.fraction)
    elif isinstance(spec, (float, np.floating)):
        cap = max(int(float(spec) * prepared.peak_live_bytes), 1)
    else:
        cap = parse_capacity(spec)
    check_feasible(prepared, cap)
    return cap
