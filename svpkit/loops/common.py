"""Pieces every SVP loop shares."""

from __future__ import annotations

from typing import Any, Protocol

from svpkit.data.base import Dataset
from svpkit.models.base import ModelSpec
from svpkit.selectors.base import SelectorSpec
from svpkit.train import resolve_device


class EpochOverrides(Protocol):
    proxy_epochs: int | None
    target_epochs: int | None


class LoopConfig(EpochOverrides, Protocol):
    seed: int
    device: str
    batch_size: int | None


def run_role(selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: EpochOverrides) -> str:
    """``random`` (no selector model), ``baseline`` (the selector model is the target, same
    schedule) or ``proxy``: the tag ``svpkit.role`` that pairs runs in ``svpkit compare``."""
    if not selector.needs:
        return "random"
    same_epochs = (cfg.proxy_epochs or proxy.train.epochs) == (cfg.target_epochs or target.train.epochs)
    return "baseline" if proxy.name == target.name and same_epochs else "proxy"


def selection_run_tags(
    loop: str, dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: LoopConfig
) -> dict[str, str]:
    """The tags every selection run carries (the keys ``svpkit compare`` pairs runs by)."""
    return {
        "svpkit.loop": loop,
        "svpkit.role": run_role(selector, proxy, target, cfg),
        "svpkit.dataset": dataset.name,
        "svpkit.selector": selector.name,
        "svpkit.selector_model": proxy.name if selector.needs else "none",
        "svpkit.target_model": target.name,
        "svpkit.seed": str(cfg.seed),
    }


def selection_run_params(
    dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: LoopConfig
) -> dict[str, Any]:
    """The params every selection run logs: names, seed, device, schedules, data set identity."""
    return {
        "dataset": dataset.name,
        "selector": selector.name,
        "proxy": proxy.name,
        "target": target.name,
        "seed": cfg.seed,
        "device": str(resolve_device(cfg.device)),
        "proxy_epochs": cfg.proxy_epochs or proxy.train.epochs,
        "target_epochs": cfg.target_epochs or target.train.epochs,
        "batch_size": cfg.batch_size or "model default",
        "train_size": len(dataset.train),
        "test_size": len(dataset.test),
        "dataset_digest": dataset.digest,
    }
