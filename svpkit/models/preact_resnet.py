"""Pre-activation ResNets for 32×32 images (He et al. 2016, "Identity Mappings"), as in the
paper's reference code (stanford-futuredata/selection-via-proxy, ``svp/cifar/models.py``).

Three sections of 16/32/64 filters; ResNet20/56/110 use basic blocks (3/9/18 per section),
ResNet164 bottlenecks (18 per section, ×4 expansion). The classifier is ``fc``, the last
``nn.Linear``; its input (global-average-pooled features after the final BN-ReLU) is the embedding.
"""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from svpkit.models.base import ModelSpec, TrainConfig


def _shortcut(inplanes: int, out: int, stride: int) -> nn.Module:
    """A 1×1 projection when the block changes shape, else the identity."""
    if stride != 1 or inplanes != out:
        return nn.Conv2d(inplanes, out, 1, stride=stride, bias=False)
    return nn.Identity()


class _PreActUnit(nn.Module):
    """BN-ReLU first; a projection shortcut reads the pre-activated input (the reference's behaviour)."""

    bn1: nn.BatchNorm2d
    shortcut: nn.Module

    def residual(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(x))
        if not isinstance(self.shortcut, nn.Identity):
            x = h
        return self.residual(h) + self.shortcut(x)


class PreActBlock(_PreActUnit):
    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.shortcut = _shortcut(inplanes, planes * self.expansion, stride)

    def residual(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv2(F.relu(self.bn2(self.conv1(h))))


class PreActBottleneck(_PreActUnit):
    expansion = 4

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.shortcut = _shortcut(inplanes, planes * self.expansion, stride)

    def residual(self, h: torch.Tensor) -> torch.Tensor:
        h = self.conv2(F.relu(self.bn2(self.conv1(h))))
        return self.conv3(F.relu(self.bn3(h)))


class PreActResNet(nn.Module):
    """Stem conv, sections (stride 2 at the start of every section but the first), BN-ReLU,
    global average pooling, linear classifier."""

    def __init__(
        self,
        block: type[PreActBlock] | type[PreActBottleneck],
        layers: tuple[int, ...],
        filters: tuple[int, ...] = (16, 32, 64),
        num_classes: int = 10,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        inplanes = filters[0]
        self.conv1 = nn.Conv2d(in_channels, inplanes, 3, padding=1, bias=False)
        sections = []
        for section_index, (size, planes) in enumerate(zip(layers, filters)):
            blocks = []
            for layer_index in range(size):
                stride = 2 if section_index != 0 and layer_index == 0 else 1
                blocks.append(block(inplanes, planes, stride=stride))
                inplanes = planes * block.expansion
            sections.append(nn.Sequential(*blocks))
        self.sections = nn.Sequential(*sections)
        self.bn = nn.BatchNorm2d(inplanes)
        self.fc = nn.Linear(inplanes, num_classes)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.sections(self.conv1(x))
        h = F.relu(self.bn(h))
        h = F.adaptive_avg_pool2d(h, 1).flatten(1)
        return self.fc(h)


# The paper's CIFAR schedule: 181 epochs, lr 0.1 decayed ×0.1 at epochs 90 and 136.
CIFAR_TRAIN = TrainConfig(epochs=181, batch_size=128, lr=0.1, momentum=0.9, weight_decay=5e-4, milestones=(90, 136))
# ResNet110/164 first run one epoch at 0.01 to get training going (He et al.; the paper).
CIFAR_TRAIN_WARMUP = replace(CIFAR_TRAIN, warmup_epochs=1, warmup_lr=0.01)

_DEPTHS: dict[int, tuple[type[PreActBlock] | type[PreActBottleneck], int]] = {
    20: (PreActBlock, 3),
    56: (PreActBlock, 9),
    110: (PreActBlock, 18),
    164: (PreActBottleneck, 18),
}


def preact_resnet(depth: int, num_classes: int = 10, input_shape: tuple[int, ...] = (32, 32, 3)) -> PreActResNet:
    """Pre-activation ResNet of ``depth`` 20, 56, 110 or 164 for (H, W, C) images."""
    if depth not in _DEPTHS:
        raise ValueError(f"no pre-activation ResNet of depth {depth} (have {sorted(_DEPTHS)})")
    block, per_section = _DEPTHS[depth]
    channels = input_shape[-1] if len(input_shape) == 3 else 3
    return PreActResNet(block, (per_section,) * 3, num_classes=num_classes, in_channels=channels)


def _spec(depth: int) -> ModelSpec:
    block, per_section = _DEPTHS[depth]
    kind = "basic" if block is PreActBlock else "bottleneck"
    return ModelSpec(
        name=f"preact_resnet{depth}",
        family="preact_resnet",
        train=CIFAR_TRAIN_WARMUP if depth >= 110 else CIFAR_TRAIN,
        build=lambda num_classes, shape: preact_resnet(depth, num_classes, shape),
        modalities=("image",),
        description=f"pre-activation ResNet{depth} for 32x32 images ({per_section} {kind} blocks x 3 sections)",
        example_input_shape=(32, 32, 3),
    )


SPECS = [_spec(depth) for depth in (20, 56, 110, 164)]
