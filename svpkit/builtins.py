"""svpkit's own models, selectors and data sets, registered through the public hooks."""

from __future__ import annotations

from collections.abc import Callable

from svpkit.hookspecs import hookimpl


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    from svpkit.models import digits

    for spec in digits.SPECS:
        register(spec)


@hookimpl
def register_selectors(register: Callable[..., None]) -> None:
    from svpkit.selectors import k_center, random, uncertainty

    for module in (random, uncertainty, k_center):
        for spec in module.SPECS:
            register(spec)


@hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    from svpkit.data import digits

    register(digits.SPEC)
