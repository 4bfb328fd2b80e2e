"""Frozen-embedding heads: small models on stored backbone embeddings (``--backbone``).

With a backbone the data set a loop sees is the embedded pool (N×D standardised vectors;
svpkit.backbones.embed), so a model on it is only the head a linear probe or a shallow classifier
trains: ``linear_head`` (one ``nn.Linear``: its embedding, the input of that layer, is the backbone
embedding itself, which greedy k-center and BADGE then pick in) and ``mlp_head`` (one hidden
layer). Either serves as proxy and as target; a round trains in seconds on a CPU. They read any
``vector`` data set.
"""

from __future__ import annotations

import torch
from torch import nn

from svpkit.models.base import ModelSpec, TrainConfig


def _width(input_shape: tuple[int, ...]) -> int:
    return int(torch.tensor(input_shape).prod())


class LinearHead(nn.Module):
    """Logistic regression on the embedding."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(_width(input_shape), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(x))


class MLPHead(nn.Module):
    """One hidden layer (ReLU, dropout) on the embedding."""

    def __init__(self, num_classes: int, input_shape: tuple[int, ...], hidden: int = 256) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(_width(input_shape), hidden), nn.ReLU(), nn.Dropout(0.2))
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


# Few labels, cheap steps: many epochs of small batches; the decay keeps the last epochs steady.
_SCHEDULE = TrainConfig(epochs=60, batch_size=32, lr=0.01, weight_decay=1e-3, milestones=(40, 52))

SPECS = [
    ModelSpec(
        name="linear_head",
        family="head",
        train=_SCHEDULE,
        build=LinearHead,
        modalities=("vector",),
        description="linear classifier on frozen embeddings (--backbone): the cheapest proxy and target",
        example_input_shape=(1280,),
    ),
    ModelSpec(
        name="mlp_head",
        family="head",
        train=_SCHEDULE,
        build=MLPHead,
        modalities=("vector",),
        description="one-hidden-layer (256) MLP on frozen embeddings (--backbone)",
        example_input_shape=(1280,),
    ),
]
