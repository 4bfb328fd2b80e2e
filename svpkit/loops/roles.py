"""Pieces every SVP loop shares."""

from __future__ import annotations

from typing import Protocol

from svpkit.models.base import ModelSpec
from svpkit.selectors.base import SelectorSpec


class EpochOverrides(Protocol):
    proxy_epochs: int | None
    target_epochs: int | None


def run_role(selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: EpochOverrides) -> str:
    """``random`` (no selector model), ``baseline`` (the selector model is the target, same
    schedule) or ``proxy``: the tag ``svpkit.role`` that pairs runs in ``svpkit compare``."""
    if not selector.needs:
        return "random"
    same_epochs = (cfg.proxy_epochs or proxy.train.epochs) == (cfg.target_epochs or target.train.epochs)
    return "baseline" if proxy.name == target.name and same_epochs else "proxy"
