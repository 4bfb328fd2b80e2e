"""svpkit's own models, selectors and data sets, registered through the public hooks."""

from __future__ import annotations

from collections.abc import Callable

from svpkit.hookspecs import hookimpl


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    from svpkit.models import digits, heads, preact_resnet, torchvision_resnet, vdcnn

    for module in (digits, heads, preact_resnet, torchvision_resnet, vdcnn):
        for spec in module.SPECS:
            register(spec)


@hookimpl
def register_selectors(register: Callable[..., None]) -> None:
    from svpkit.selectors import (
        auto,
        badge,
        bald,
        data_scores,
        forgetting,
        k_center,
        maxherding,
        probcover,
        typiclust,
        uncertainty,
        uniform,
    )

    for module in (
        uniform,
        uncertainty,
        k_center,
        forgetting,
        bald,
        badge,
        data_scores,
        typiclust,
        probcover,
        maxherding,
        auto,
    ):
        for spec in module.SPECS:
            register(spec)


@hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    from svpkit.data import cifar, digits, imagefolder, npz, shards, text_csv

    for spec in (digits.SPEC, *cifar.SPECS, imagefolder.SPEC, shards.SPEC, text_csv.SPEC, npz.SPEC):
        register(spec)
