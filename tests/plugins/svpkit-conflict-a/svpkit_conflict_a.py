"""Registers 'conflict_mlp' (also registered by the other conflict plugin) and 'conflict_a_mlp'."""

from __future__ import annotations

from collections.abc import Callable

import torch

from svpkit.hookspecs import hookimpl
from svpkit.models.base import ModelSpec, TrainConfig


def _mlp(num_classes: int, input_shape: tuple[int, ...]) -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(input_shape[0], num_classes))


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    for name in ("conflict_mlp", "conflict_a_mlp"):
        register(
            ModelSpec(
                name=name,
                family="mlp",
                modalities=("vector",),
                train=TrainConfig(epochs=2, batch_size=32, lr=0.05),
                build=_mlp,
                example_input_shape=(64,),
                description="test plugin a: linear model",
            )
        )
