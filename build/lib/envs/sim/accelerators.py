"""Accelerator presets: peak dense FLOP/s per dtype, memory bandwidth and capacity, and the host link each sits on.

Published figures (dense, i.e. without 2:4 sparsity; FLOP/s are per second, 1 TFLOP/s = 10^12):

================  =======  =======  ===========  =========  ==========  ==========  ===========================
preset            FP32     TF32     BF16 / FP16  FP8        memory BW   memory      host link
================  =======  =======  ===========  =========  ==========  ==========  ===========================
``h100-sxm``      67       494.7    989.4        1978.9     3.35 TB/s   80 GB HBM3  PCIe 5.0 x16
``h200-sxm``      67       494.7    989.4        1978.9     4.8 TB/s    141 GB      PCIe 5.0 x16
``gh200``         67       494.7    989.4        1978.9     4.0 TB/s    96 GB HBM3  NVLink-C2C (450 GB/s/dir)
``a100-80gb``     19.5     156      312          –          2.039 TB/s  80 GB       PCIe 4.0 x16
``l4``            30.3     60       121          242.5      300 GB/s    24 GB GDDR6 PCIe 4.0 x16
================  =======  =======  ===========  =========  ==========  ==========  ===========================

Sources: NVIDIA H100 Tensor Core GPU datasheet (SXM5 column; the sparse figures there are twice these), NVIDIA
H200 Tensor Core GPU datasheet, NVIDIA GH200 Grace Hopper Superchip datasheet (the 96 GB HBM3 part), NVIDIA A100
Tensor Core GPU datasheet (80GB SXM column), NVIDIA L4 Tensor Core GPU datasheet. FP32 is the non-tensor-core rate:
PyTorch runs float32 matmuls at full precision unless TF32 is enabled. ``python -m eval.calibrate_device`` measures
the real figures of the GPU it runs on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from envs.sim.bandwidth import get_link

#: dtype names as traces record them (``torch`` names), and the peak column each maps to.
_DTYPE_COLUMN = {"float32": "float32", "tfloat32": "tfloat32", "bfloat16": "bfloat16", "float16": "bfloat16",
                 "float8_e4m3fn": "float8", "float8_e5m2": "float8"}  # fmt: skip


@dataclass(frozen=True)
class Accelerator:
    """One accelerator part.

    Attributes:
        name: Preset name.
        peak_tflops: Peak dense TFLOP/s by dtype column (``float32``, ``tfloat32``, ``bfloat16``, ``float8``).
        memory_tb_per_s: Peak device-memory bandwidth in TB/s (10^12 bytes per second).
        memory_gb: Device memory in GB.
        link: Name of its host link preset (:data:`envs.sim.bandwidth.LINKS`).
    """

    name: str
    peak_tflops: Mapping[str, float]
    memory_tb_per_s: float
    memory_gb: float
    link: str
    description: str = field(default="", compare=False)

    def peak_flops(self, dtype: str | None) -> float:
        """Peak FLOP/s for ``dtype`` (a torch dtype name; None or unknown: ``bfloat16``, the usual training type;
        a dtype the part has no fast path for falls back to the next wider one it has)."""
        column = _DTYPE_COLUMN.get(dtype or "bfloat16", "bfloat16")
        for col in (column, "bfloat16", "float32"):
            if col in self.peak_tflops:
                return self.peak_tflops[col] * 1e12
        raise ValueError(f"{self.name} has no peak FLOP/s for {dtype}")

    @property
    def memory_bytes_per_s(self) -> float:
        return self.memory_tb_per_s * 1e12


def _part(name: str, fp32: float, tf32: float, bf16: float, fp8: float | None, mem_tb: float, gb: float, link: str,
          description: str) -> Accelerator:  # fmt: skip
    peaks = {"float32": fp32, "tfloat32": tf32, "bfloat16": bf16, **({"float8": fp8} if fp8 else {})}
    get_link(link)  # a preset names a link that exists
    return Accelerator(name, MappingProxyType(peaks), mem_tb, gb, link, description)


ACCELERATORS: Mapping[str, Accelerator] = MappingProxyType({
    a.name: a
    for a in (
        _part("h100-sxm", 67.0, 494.7, 989.4, 1978.9, 3.35, 80, "pcie5-x16", "NVIDIA H100 SXM5 80GB on PCIe 5.0"),
        _part("h200-sxm", 67.0, 494.7, 989.4, 1978.9, 4.8, 141, "pcie5-x16", "NVIDIA H200 SXM 141GB on PCIe 5.0"),
        _part("gh200", 67.0, 494.7, 989.4, 1978.9, 4.0, 96, "nvlink-c2c", "NVIDIA GH200 (H100 96GB) on NVLink-C2C"),
        _part("a100-80gb", 19.5, 156.0, 312.0, None, 2.039, 80, "pcie4-x16", "NVIDIA A100 SXM 80GB on PCIe 4.0"),
        _part("l4", 30.3, 60.0, 121.0, 242.5, 0.3, 24, "pcie4-x16", "NVIDIA L4 24GB on PCIe 4.0"),
    )
})  # fmt: skip


def get_accelerator(name: str) -> Accelerator:
    """The preset called ``name``; raises ValueError listing the presets."""
    try:
        return ACCELERATORS[name]
    except KeyError:
        raise ValueError(f"unknown accelerator {name!r}; valid: {', '.join(ACCELERATORS)}") from None
