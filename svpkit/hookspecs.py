"""The plugin contract. A plugin implements any of these hooks with ``@svpkit.hookimpl`` (this
module's :data:`hookimpl`, an attribute of the ``svpkit`` package).

Each ``register_*`` hook receives a ``register`` callback; call it once per thing the plugin
provides. Built-in models, selectors and data sets are registered through these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import typer

hookspec = pluggy.HookspecMarker("svpkit")
hookimpl = pluggy.HookimplMarker("svpkit")


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register model specs: ``register(ModelSpec(...))``."""


@hookspec
def register_selectors(register: Callable[..., None]) -> None:
    """Register selectors: ``register(SelectorSpec(...))``."""


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register data sets: ``register(DatasetSpec(...))``."""


@hookspec
def register_backbones(register: Callable[..., None]) -> None:
    """Register pretrained backbones: ``register(BackboneSpec(...))`` (svpkit.backbones.base)."""


@hookspec
def register_commands(app: typer.Typer) -> None:
    """Add commands to the ``svpkit`` typer app (optional)."""
