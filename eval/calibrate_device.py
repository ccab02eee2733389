"""``python -m eval.calibrate_device``: measures the figures the step-time model uses on the GPU it runs on —
pinned host↔device copy bandwidth both ways, device-memory bandwidth (a device-to-device copy reads and writes
each byte) and dense matmul FLOP/s per dtype — and prints them beside a preset's published peaks, with the
efficiency factors they imply. It needs a CUDA GPU and says so in one line where there is none; nothing else in
the project needs one."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass

import tyro


@dataclass(frozen=True)
class CalibrateConfig:
    """Measure a GPU's link, memory and matmul speed."""

    compare: str = "h100-sxm"
    """Accelerator preset to compare against (envs/sim/accelerators.py)."""
    copy_mib: int = 1024
    """Bytes per host<->device copy, in MiB."""
    matmul_n: int = 8192
    """Square matmul size."""
    repeats: int = 10
    json: bool = False
    """Print one JSON object."""


def _median_ms(fn, repeats: int) -> float:
    import torch

    fn()  # warm-up
    torch.cuda.synchronize()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measure(cfg: CalibrateConfig) -> dict:
    """Every measured figure (GB/s are 10^9 bytes per second, TFLOP/s 10^12)."""
    import torch

    n_bytes = cfg.copy_mib * 2**20
    host = torch.empty(n_bytes, dtype=torch.uint8, pin_memory=True)
    dev = torch.empty(n_bytes, dtype=torch.uint8, device="cuda")
    dev2 = torch.empty_like(dev)
    out = {
        "device": torch.cuda.get_device_name(),
        "h2d_gb_per_s": n_bytes / _median_ms(lambda: dev.copy_(host, non_blocking=True), cfg.repeats) / 1e6,
        "d2h_gb_per_s": n_bytes / _median_ms(lambda: host.copy_(dev, non_blocking=True), cfg.repeats) / 1e6,
        "memory_tb_per_s": 2 * n_bytes / _median_ms(lambda: dev2.copy_(dev), cfg.repeats) / 1e9,
    }
    n = cfg.matmul_n
    for name, dtype, tf32 in (("float32", torch.float32, False), ("tfloat32", torch.float32, True),
                              ("bfloat16", torch.bfloat16, False), ("float16", torch.float16, False)):  # fmt: skip
        torch.backends.cuda.matmul.allow_tf32 = tf32
        a = torch.randn(n, n, device="cuda", dtype=dtype)
        b = torch.randn(n, n, device="cuda", dtype=dtype)
        out[f"matmul_tflops_{name}"] = 2 * n**3 / _median_ms(lambda a=a, b=b: a @ b, cfg.repeats) / 1e9
    torch.backends.cuda.matmul.allow_tf32 = False
    return out


def main(argv: list[str] | None = None) -> int:
    cfg = tyro.cli(CalibrateConfig, args=argv, prog="tensorcache-calibrate-device")
    import torch

    from envs.sim.accelerators import get_accelerator
    from envs.sim.bandwidth import get_link

    preset = get_accelerator(cfg.compare)
    if not torch.cuda.is_available():
        print("calibrate_device: no CUDA GPU here; run it on the machine whose figures you want")
        return 2
    m = measure(cfg)
    link = get_link(preset.link).gb_per_s
    eff = {
        "link_efficiency": min(m["h2d_gb_per_s"], m["d2h_gb_per_s"]) / link,
        "memory_efficiency": m["memory_tb_per_s"] / preset.memory_tb_per_s,
        "compute_efficiency_bfloat16": m["matmul_tflops_bfloat16"] / preset.peak_tflops["bfloat16"],
    }
    if cfg.json:
        print(json.dumps({"measured": m, "preset": cfg.compare, "implied": eff}, indent=2))
        return 0
    print(f"{m['device']} (compared with preset {cfg.compare}: link {preset.link} {link:g} GB/s per direction)")
    print(f"  host->device {m['h2d_gb_per_s']:8.1f} GB/s    device->host {m['d2h_gb_per_s']:8.1f} GB/s (pinned)")
    print(f"  device memory {m['memory_tb_per_s']:7.2f} TB/s    (published {preset.memory_tb_per_s:g})")
    for name in ("float32", "tfloat32", "bfloat16", "float16"):
        peak = preset.peak_tflops.get("bfloat16" if name == "float16" else name)
        print(f"  matmul {name:<9} {m[f'matmul_tflops_{name}']:8.1f} TFLOP/s (published {peak:g})")
    print("  implied efficiencies: " + ", ".join(f"{k} {v:.2f}" for k, v in eff.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
