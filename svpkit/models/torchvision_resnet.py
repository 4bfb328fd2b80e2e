"""ResNet18/50 from torchvision (random initialisation, ``weights=None``) for ImageNet-style data.

The classifier is torchvision's ``fc`` (the last ``nn.Linear``); its input, the global-average-
pooled features, is the embedding. The stem is torchvision's (7×7 conv, max pool), as in the
paper's ImageNet experiments.
"""

from __future__ import annotations

from torch import nn

from svpkit.models.base import ModelSpec, TrainConfig

# The paper's ImageNet schedule (reference ``svp/imagenet``): 5 warm-up epochs ramping the learning
# rate up to 0.1, then 25 epochs at 0.1, 30 at 0.01, 20 at 0.001 and 20 at 0.0001 (100 epochs),
# batch 256, momentum 0.9, weight decay 1e-4. TrainConfig holds one warm-up rate, so the linear
# ramp (0.0167 … 0.0833) is run at its mean, 0.05; the reference's label smoothing (0.1) is not
# part of the torch learner.
IMAGENET_TRAIN = TrainConfig(
    epochs=100,
    batch_size=256,
    lr=0.1,
    momentum=0.9,
    weight_decay=1e-4,
    milestones=(30, 60, 80),
    gamma=0.1,
    warmup_epochs=5,
    warmup_lr=0.05,
)


def torchvision_resnet(arch: str, num_classes: int, input_shape: tuple[int, ...]) -> nn.Module:
    """``torchvision.models.<arch>(weights=None, num_classes=...)``; other channel counts get a
    matching first convolution."""
    from torchvision import models

    model = getattr(models, arch)(weights=None, num_classes=num_classes)
    channels = input_shape[-1] if len(input_shape) == 3 else 3
    if channels != 3:
        model.conv1 = nn.Conv2d(channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    return model


def _spec(arch: str, description: str) -> ModelSpec:
    return ModelSpec(
        name=arch,
        family="resnet",
        train=IMAGENET_TRAIN,
        build=lambda num_classes, shape: torchvision_resnet(arch, num_classes, shape),
        modalities=("image",),
        description=description,
        example_input_shape=(224, 224, 3),
        example_num_classes=1000,
    )


SPECS = [
    _spec("resnet18", "torchvision ResNet18 (random init) for ImageNet-sized images"),
    _spec("resnet50", "torchvision ResNet50 (random init) for ImageNet-sized images"),
]
