"""Models for the embedded default (8×8 digits as 64-vectors): a small proxy and a larger target."""

from __future__ import annotations

import torch
from torch import nn

from svpkit.models.base import ModelSpec, TrainConfig


class DigitsMLP(nn.Module):
    """One hidden layer: the cheap proxy."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], hidden: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_shape).prod()), hidden), nn.ReLU())
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class DigitsCNN(nn.Module):
    """A small convolutional network on the 8×8 image: the expensive target."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], width: int = 64) -> None:
        super().__init__()
        self.side = int(round(int(torch.tensor(input_shape).prod()) ** 0.5))
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x.reshape(-1, 1, self.side, self.side)))


_SCHEDULE = TrainConfig(epochs=30, batch_size=32, lr=0.05, milestones=(15, 23))


def _spec(name: str, family: str, module: type[nn.Module], description: str) -> ModelSpec:
    return ModelSpec(
        name=name,
        family=family,
        train=_SCHEDULE,
        build=lambda c, s: module(c, s),
        modalities=("vector",),
        description=description,
        example_input_shape=(64,),
    )


SPECS = [
    _spec("digits_mlp", "mlp", DigitsMLP, "64-32-10 MLP for 8x8 digits (the embedded default's proxy)"),
    _spec("digits_cnn", "cnn", DigitsCNN, "3-layer CNN for 8x8 digits (the embedded default's target)"),
]
