"""Plain-PyTorch ResNet (bottleneck) definitions matching torchvision's ResNet-50/101/152 parameter for
parameter (conv weights without bias, batch-norm affine weights, 1000-class fc). Batch norm keeps running mean and
variance buffers, updated in training mode."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class ResNetConfig:
    """Bottleneck blocks per stage, stem width and classes."""

    blocks: tuple[int, int, int, int]
    width: int = 64
    n_classes: int = 1000
    dtype: str = "float32"

    @property
    def n_layers(self) -> int:
        return sum(self.blocks)

    @property
    def torch_dtype(self) -> torch.dtype:
        return getattr(torch, self.dtype)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_layers(self, n: int) -> ResNetConfig:
        """Same network with ``n`` bottleneck blocks in total; stage 3 absorbs the difference (as 50→101→152)."""
        b1, b2, b3, b4 = self.blocks
        b3 = n - b1 - b2 - b4
        if b3 < 1:
            raise ValueError(f"a ResNet needs at least {b1 + b2 + b4 + 1} bottleneck blocks, got {n}")
        return ResNetConfig((b1, b2, b3, b4), self.width, self.n_classes, self.dtype)


class BatchNorm(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.register_buffer("running_mean", torch.zeros(c))
        self.register_buffer("running_var", torch.ones(c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, 0.1, 1e-5)


def conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, stride=stride, padding=k // 2, bias=False)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = conv(cin, width, 1), BatchNorm(width)
        self.conv2, self.bn2 = conv(width, width, 3, stride), BatchNorm(width)
        self.conv3, self.bn3 = conv(width, cout, 1), BatchNorm(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(conv(cin, cout, 1, stride), BatchNorm(cout))
        #: Whether the shortcut branch runs before the main path (independent branches; set per seed).
        self.shortcut_first = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x
        if self.downsample is not None and self.shortcut_first:
            identity = self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)), inplace=True)
        out = F.relu(self.bn2(self.conv2(out)), inplace=True)
        out = self.bn3(self.conv3(out))
        if self.downsample is not None and not self.shortcut_first:
            identity = self.downsample(x)
        out += identity
        return F.relu(out, inplace=True)


class ResNet(nn.Module):
    """Stem, four stages of bottlenecks (flattened into ``layers``), global pool and fc."""

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.stem = nn.Sequential(conv(3, cfg.width, 7, 2), BatchNorm(cfg.width), nn.ReLU(inplace=True))
        blocks, cin = [], cfg.width
        for stage, n in enumerate(cfg.blocks):
            width = cfg.width * 2**stage
            for j in range(n):
                blocks.append(Bottleneck(cin, width, 2 if (j == 0 and stage > 0) else 1))
                cin = width * Bottleneck.expansion
        self.layers = nn.ModuleList(blocks)
        self.fc = nn.Linear(cin, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(self.stem(x), 3, 2, 1)
        for block in self.layers:
            x = block(x)
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


PRESETS = {
    "resnet50": ResNetConfig((3, 4, 6, 3)),
    "resnet101": ResNetConfig((3, 4, 23, 3)),
    "resnet152": ResNetConfig((3, 8, 36, 3)),
}
#: torchvision's parameter counts.
PUBLISHED_PARAMS = {"resnet50": 25_557_032, "resnet101": 44_549_160, "resnet152": 60_192_808}
