"""Traces of the bundled Hugging Face configs (:data:`envs.capture.hf.EXAMPLE_CONFIGS`) as a suite family uses
them: the benchmarks take workloads from here, never from the capture room directly."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from envs.trace import Trace


def example_trace(example: str, task: str, *, layers: int | None, seq: int, batch: int, steps: int) -> Trace:
    """The trace of bundled config ``example``: ``steps`` training steps (``task="train"``), or a prefill and
    ``steps`` decode steps (``"infer"``), at sequence length ``seq`` and ``batch`` sequences."""
    from envs.capture.hf import capture_hf

    return capture_hf(example, task=task, layers=layers, seq=seq, batch=batch,
                      steps=steps if task == "train" else 1, decode_steps=steps)  # fmt: skip
