"""``tcb-v2`` (TensorCache Benchmark v2): scored against the certified lower bound, with a held-out-family split.

- In distribution (``train``, ``validation``, ``test``): GPT-2 and Mistral-7B serving, Mixtral-8x7B serving,
  Mistral-7B training (3 steps of seeded batch 1-2 x sequence 1k-4k, so no two seeds repeat a trace) and ResNet-50
  training, each at headroom 0.1, 0.3 and 0.6.
- ``test-ood``: architectures and regimes no other split has: GPT-2 training, ResNet-101 training (batch up to 8)
  and ResNet-152 training (batch up to 4), at headrooms 0.2 and 0.45 (capacities no other split uses). It answers
  "does a policy trained here work on *my* model?".

Every split's traces are distinct by :attr:`envs.trace.Trace.access_hash` (tested over the whole suite), and every
instance that is scored must have LRU at least 5% above the bound (``Suite.min_lru_gap``); an instance that falls
short is excluded from the aggregates and listed in the board, never silently scored.
"""

from envs.benchmarks.suite import Family, Suite

TCB_V2 = Suite(
    name="tcb-v2",
    version="2.0",
    families=(
        Family("gpt2-serve", "transformer-infer", "gpt2-small", layers=6, iterations=6),
        Family("mistral-train", "transformer-train", "mistral-7b", layers=6, iterations=3, batch=2),
        Family("mistral-serve", "transformer-infer", "mistral-7b", layers=6, iterations=6),
        Family("mixtral-serve", "moe-infer", "mixtral-8x7b", layers=4, iterations=6),
        Family("resnet50-train", "cnn-train", "resnet50", layers=None, iterations=3, batch=8),
    ),
    headrooms=(0.1, 0.3, 0.6),
    seeds={
        "train": tuple(range(0, 8)),
        "validation": (100, 101),
        "test": (1000, 1001, 1002),
        "test-ood": (2000, 2001, 2002),
    },
    anchor="lower-bound",
    ood_families=(
        Family("gpt2-train", "transformer-train", "gpt2-small", layers=4, iterations=2, batch=8),
        Family("resnet101-train", "cnn-train", "resnet101", layers=None, iterations=2, batch=8),
        Family("resnet152-train", "cnn-train", "resnet152", layers=None, iterations=2, batch=4),
    ),
    ood_headrooms=(0.2, 0.45),
    min_lru_gap=0.05,
)
