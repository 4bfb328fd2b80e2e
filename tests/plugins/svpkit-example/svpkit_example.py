"""An example third-party plugin: a wider MLP and a 'lowest top probability' selector."""

from __future__ import annotations

from collections.abc import Callable

import torch

from svpkit.hookspecs import hookimpl
from svpkit.models.base import ModelSpec, TrainConfig
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec, top_k_by_score


def _wide_mlp(num_classes: int, input_shape: tuple[int, ...]) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.Flatten(),
        torch.nn.Linear(input_shape[0], 128),
        torch.nn.ReLU(),
        torch.nn.Linear(128, num_classes),
    )


def _lowest_top_probability(ctx: SelectionContext, k: int) -> Selection:
    assert ctx.probabilities is not None
    return top_k_by_score(ctx, -ctx.probabilities.max(dim=1).values, k)


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    register(
        ModelSpec(
            name="example_wide_mlp",
            family="mlp",
            modalities=("vector",),
            train=TrainConfig(epochs=5, batch_size=32, lr=0.05),
            build=_wide_mlp,
            example_input_shape=(64,),
            description="example plugin: 64-128-10 MLP",
        )
    )


@hookimpl
def register_selectors(register: Callable[..., None]) -> None:
    register(
        SelectorSpec(
            "example_lowest_top_probability",
            _lowest_top_probability,
            frozenset({"probabilities"}),
            "example plugin: lowest max-probability first",
        )
    )
