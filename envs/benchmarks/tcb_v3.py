"""``tcb-v3``: tcb-v2's splits, with every training trace at least three steps long and two architectures traced
from Hugging Face configs in ``test-ood``.

- ``train``, ``validation``, ``test``: tcb-v2's families, seeds and headrooms (the same traces), so what was trained
  on tcb-v2's train split is trained on this one.
- ``test-ood``: GPT-2 training and ResNet-101 / ResNet-152 training now run three steps (two left half their
  accesses cold), and two architectures no other split has come from configs written from public model cards,
  traced through the project's ``--hf-config`` path: Pythia-1.4B (GPT-NeoX: parallel residual, partial rotary) and
  Gemma-2B (multi-query attention, 256-wide heads), each training and serving, four blocks deep, the sequence
  length set by the seed. Headrooms 0.2 and 0.45, as tcb-v2's.

tcb-v2 stays registered and replayable; its rows are unchanged.
"""

from dataclasses import replace

from envs.benchmarks.suite import Family
from envs.benchmarks.tcb_v2 import TCB_V2

TCB_V3 = replace(
    TCB_V2,
    name="tcb-v3",
    version="3.0",
    ood_families=(
        Family("gpt2-train", "transformer-train", "gpt2-small", layers=4, iterations=3, batch=8),
        Family("resnet101-train", "cnn-train", "resnet101", layers=None, iterations=3, batch=8),
        Family("resnet152-train", "cnn-train", "resnet152", layers=None, iterations=3, batch=4),
        Family("pythia-train", "hf-train", "pythia-1.4b", layers=4, iterations=3),
        Family("pythia-serve", "hf-infer", "pythia-1.4b", layers=4, iterations=6, batch=2),
        Family("gemma-train", "hf-train", "gemma-2b", layers=4, iterations=3),
        Family("gemma-serve", "hf-infer", "gemma-2b", layers=4, iterations=6, batch=2),
    ),
)
