"""``tcb-v1`` (TensorCache Benchmark v1.1), scored against Belady. Kept so old results can be replayed."""

from envs.benchmarks.suite import Family, Suite

TCB_V1 = Suite(
    name="tcb-v1",
    version="1.1",
    families=(
        Family("gpt2-serve", "transformer-infer", "gpt2-small", layers=6, iterations=6),
        Family("mistral-train", "transformer-train", "mistral-7b", layers=6, iterations=2),
        Family("mistral-serve", "transformer-infer", "mistral-7b", layers=6, iterations=6),
        Family("mixtral-serve", "moe-infer", "mixtral-8x7b", layers=4, iterations=6),
        Family("resnet50-train", "cnn-train", "resnet50", layers=None, iterations=3, batch=8),
    ),
    headrooms=(0.1, 0.3, 0.6),
    seeds={"train": tuple(range(0, 8)), "validation": (100, 101), "test": (1000, 1001, 1002)},
)
