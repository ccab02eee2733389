"""``tensorcache-trace`` (``python -m envs.cli.trace_cli``): generate, inspect and convert traces.

Subcommands: ``generate`` (a workload preset), ``info`` (a summary), ``export`` (to oracleGeneral, CSV or npz),
``import`` (any format to npz).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import tyro

from envs.cli import run_cli
from envs.trace import Trace
from envs.trace.formats import read_trace, write_trace
from envs.trace.record import DEFAULT_ACCESS_LIMIT

Format = Literal["npz", "oracleGeneral", "csv"]
Workload = Literal["transformer-train", "transformer-infer", "cnn-train", "moe-infer"]


@dataclass(frozen=True)
class Generate:
    """Generate a trace from a workload preset (presets: transformer-*: mistral-7b, gpt2-small; cnn-train: resnet50,
    resnet101, resnet152; moe-infer: mixtral-8x7b), or from a Hugging Face config.json (--hf-config)."""

    out: Path
    """Output .npz file."""
    workload: Workload | None = None
    """Workload family (or give --hf-config)."""
    preset: str | None = None
    """Preset of the workload (e.g. mistral-7b, gpt2-small, resnet50, mixtral-8x7b)."""
    hf_config: Path | None = None
    """A Hugging Face config.json (or a directory holding one), or a bundled example: llama-3-8b, pythia-1.4b,
    gemma-2b, qwen2-0.5b. The model is built without weights and traced."""
    task: Literal["train", "infer"] = "train"
    """With --hf-config: a training step (forward, backward, AdamW) or serving (prefill + decode with a KV cache)."""
    seq: int = 512
    """With --hf-config: tokens per sequence (the prompt, when serving)."""
    decode_steps: int = 8
    """With --hf-config --task infer: one-token decode steps."""
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    """With --hf-config: parameter dtype."""
    attn: Literal["sdpa", "eager"] = "sdpa"
    """With --hf-config: attention implementation (sdpa: fused, no seq x seq scores; eager: materialises them)."""
    layers: int | None = None
    """Override the preset's depth."""
    iterations: int | None = None
    """Training or decode steps (default: the workload's)."""
    batch: int | None = None
    """Largest per-step batch of a training workload (steps draw batch/2 or batch)."""
    requests: int | None = None
    """Concurrent requests of a serving workload (default: a seeded draw from the preset's choices)."""
    seed: int = 0
    """Seed of every random draw."""
    method: Literal["captured", "analytic"] = "captured"
    """Trace the real model on the meta device, or the analytic generator (transformer-train)."""
    max_accesses: int = DEFAULT_ACCESS_LIMIT
    """Stop, writing nothing, once the trace grows past this many accesses (0: no limit). The default is the
    Copilot's limit, so what this command writes the Copilot can load."""


@dataclass(frozen=True)
class Info:
    """Summarise a trace."""

    file: Annotated[Path, tyro.conf.Positional]
    """Trace file."""
    format: Format | None = None
    """Trace format (default: from the suffix)."""
    json: bool = False
    """Print JSON."""


@dataclass(frozen=True)
class Export:
    """Convert a trace to another format (never over its own input)."""

    file: Annotated[Path, tyro.conf.Positional]
    """Input trace file."""
    format: Format
    """Output format."""
    out: Path
    """Output file."""


@dataclass(frozen=True)
class Import:
    """Convert an oracleGeneral or CSV file to .npz (never over its own input)."""

    file: Annotated[Path, tyro.conf.Positional]
    """Input trace file."""
    out: Path
    """Output .npz file."""
    format: Format | None = None
    """Input format (default: from the suffix)."""


def _generate(cmd: Generate) -> int:
    from envs.capture.recorder import AccessLimitError, access_limit

    if cmd.max_accesses < 0:
        raise ValueError(f"--max-accesses must be >= 0, got {cmd.max_accesses}")
    try:
        with access_limit(cmd.max_accesses or None):
            trace = _generate_trace(cmd)
    except AccessLimitError as exc:
        raise ValueError(f"{exc} (or raise --max-accesses)") from None
    trace.save(cmd.out)
    print(f"wrote {cmd.out}: {len(trace)} accesses, {trace.n_tensors} tensors, hash {trace.content_hash[:12]}")
    return 0


def _generate_trace(cmd: Generate) -> Trace:
    if cmd.hf_config is not None:
        if cmd.workload is not None or cmd.preset is not None:
            raise ValueError("give either --hf-config or --workload with --preset, not both")
        from envs.capture.hf import capture_hf

        return capture_hf(cmd.hf_config, task=cmd.task, layers=cmd.layers, seq=cmd.seq, batch=cmd.batch or 1,
                           steps=cmd.iterations or 1, decode_steps=cmd.decode_steps, dtype=cmd.dtype, attn=cmd.attn)  # fmt: skip
    else:
        if cmd.workload is None or cmd.preset is None:
            raise ValueError("give --workload and --preset (or --hf-config)")
        from envs.workloads import generate_trace

        return generate_trace(cmd.workload, cmd.preset, layers=cmd.layers, iterations=cmd.iterations, seed=cmd.seed,
                              method=cmd.method, batch=cmd.batch, requests=cmd.requests)  # fmt: skip


def _info(cmd: Info) -> int:
    from envs.sim.step_time import trace_dtype

    trace = read_trace(cmd.file, cmd.format)
    by_kind = trace.bytes_by_kind()
    info = {
        "n_accesses": len(trace),
        "n_requests": int(trace.requests().size),
        "n_tensors": trace.n_tensors,
        "peak_live_bytes": trace.peak_live_bytes(),
        "bytes_by_kind": by_kind,
        "parameters": _parameters(trace.meta, by_kind.get("weight", 0), trace_dtype(trace)),
        "content_hash": trace.content_hash,
        "n_ops": trace.n_ops,
        "dtype": trace_dtype(trace),
        "total_flops": trace.total_flops,
        "op_bytes": int(trace.op_bytes.sum()) if trace.op_bytes is not None else None,
        "meta": dict(trace.meta),
    }
    if cmd.json:
        print(json.dumps(info, indent=2, default=str))
    else:
        for k, v in info.items():
            if k != "meta":
                print(f"{k:>16}: {v}")
        print(f"{'workload':>16}: {trace.meta.get('workload')} / {trace.meta.get('preset')}")
    return 0


def _parameters(meta: dict, weight_bytes: int, dtype: str | None) -> int | None:
    """The model's parameter count: recorded at capture, else its distinct weight bytes over the dtype's size
    (every weight is held once, in the model's dtype, in every trace the project makes); None when unknown."""
    if isinstance(meta.get("parameters"), int):
        return meta["parameters"]
    size = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8, "int8": 1}.get(dtype or "")
    return weight_bytes // size if size and weight_bytes else None


def _convert(file: Path, fmt_in: Format | None, out: Path, fmt_out: Format) -> int:
    from envs.io.atomic import refuse_same_file

    refuse_same_file(file, out)
    trace = read_trace(file, fmt_in)
    write_trace(trace, out, fmt_out)
    print(f"wrote {out} ({fmt_out}): {len(trace)} accesses, {trace.n_tensors} tensors")
    return 0


def main(argv: list[str] | None = None) -> int:
    cmd = tyro.extras.subcommand_cli_from_dict(
        {"generate": Generate, "info": Info, "export": Export, "import": Import},
        prog="tensorcache-trace",
        description="Generate, inspect and convert tensor-access traces.",
        args=argv,
    )
    if isinstance(cmd, Generate):
        return run_cli(lambda: _generate(cmd))
    if isinstance(cmd, Info):
        return run_cli(lambda: _info(cmd))
    if isinstance(cmd, Export):
        return run_cli(lambda: _convert(cmd.file, None, cmd.out, cmd.format))
    return run_cli(lambda: _convert(cmd.file, cmd.format, cmd.out, "npz"))


if __name__ == "__main__":
    raise SystemExit(main())
