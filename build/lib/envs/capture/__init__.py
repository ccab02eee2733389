"""Recording real PyTorch programs as traces, without weights or memory: the dispatch-mode recorder
(:mod:`~envs.capture.recorder`), the training-step bookkeeping it shares with the built-in families
(:mod:`~envs.capture.train_state`), :func:`capture` for any ``nn.Module`` (:mod:`~envs.capture.module`) and Hugging
Face configs on fake tensors (:mod:`~envs.capture.hf`, imported on use: it needs transformers).

Depends on :mod:`envs.trace`; imports torch.
"""

from envs.capture.module import block_layers, capture
from envs.capture.recorder import AccessRecorder, Registry, build_trace
from envs.capture.train_state import TrainStepState, register_params

__all__ = ["AccessRecorder", "Registry", "TrainStepState", "block_layers", "build_trace", "capture", "register_params"]
