"""Misbehaves in every way a loaded plugin can: two hooks raise, its selector returns bad picks.

Its other hooks still count: svpkit records a raising hook and goes on with the plugin's others."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from svpkit.hookspecs import hookimpl
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec


def _duplicate_picks(ctx: SelectionContext, k: int) -> Selection:
    return Selection(picks=np.repeat(ctx.pool[:1], k), scores=np.zeros(ctx.pool.size, dtype=np.float32))


@hookimpl
def register_selectors(register: Callable[..., None]) -> None:
    register(
        SelectorSpec(
            "raising_duplicate_picks",
            _duplicate_picks,
            frozenset({"probabilities"}),
            "test plugin: picks the same example k times",
        )
    )


@hookimpl
def register_datasets(register: Callable[..., None]) -> None:
    raise RuntimeError("dataset registry exploded")


@hookimpl
def register_commands(app: Any) -> None:
    raise RuntimeError("command registration exploded")
