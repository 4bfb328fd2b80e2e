"""Pieces every SVP loop shares."""

from __future__ import annotations

from typing import Any, Protocol

from svpkit.contract import Tag, format_options, setting_tags
from svpkit.data.base import Dataset
from svpkit.learners.acceleration import amp_tag
from svpkit.loops.scoring import selector_settings
from svpkit.models.base import ModelSpec
from svpkit.protocols import LearnerOptions
from svpkit.runtime import numerics_fingerprint, resolve_device
from svpkit.selectors.base import SelectorSpec


class ModelOverrides(Protocol):
    proxy_epochs: int | None
    target_epochs: int | None
    proxy_options: dict[str, Any]
    target_options: dict[str, Any]


class LoopConfig(ModelOverrides, Protocol):
    seed: int
    device: str
    batch_size: int | None
    deterministic: bool


def run_role(selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: ModelOverrides) -> str:
    """``random`` (no selector model), ``baseline`` (the selector model is the target, same
    schedule and options) or ``proxy``: the tag ``svpkit.role`` that pairs runs in ``svpkit compare``."""
    if not selector.needs:
        return "random"
    same_epochs = (cfg.proxy_epochs or proxy.train.epochs) == (cfg.target_epochs or target.train.epochs)
    same_options = format_options(cfg.proxy_options) == format_options(cfg.target_options)
    return "baseline" if proxy.name == target.name and same_epochs and same_options else "proxy"


def learner_options(cfg: LoopConfig, seed: int, epochs: int | None, model_options: dict[str, Any]) -> LearnerOptions:
    """What a loop hands a proxy or target learner: the run's device, batch size and model options."""
    return LearnerOptions(
        seed=seed,
        device=str(resolve_device(cfg.device)),
        epochs=epochs,
        batch_size=cfg.batch_size,
        deterministic=cfg.deterministic,
        extra=dict(model_options),
    )


def selection_run_tags(
    loop: str, dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: LoopConfig
) -> dict[str, str]:
    """The tags every selection run carries (the keys ``svpkit compare`` pairs runs by)."""
    dataset.require_labels(f"the {loop} loop")  # a simulation: every label must be known
    return {
        Tag.LOOP: loop,
        Tag.ROLE: run_role(selector, proxy, target, cfg),
        Tag.DATASET: dataset.name,
        Tag.SELECTOR: selector.name,
        Tag.SELECTOR_MODEL: proxy.name if selector.needs else "none",
        Tag.TARGET_MODEL: target.name,
        Tag.SEED: str(cfg.seed),
        **setting_tags(resolved_settings(proxy, target, cfg) | selector_settings(cfg)),
        **numerics_tags(cfg.device),
    }


def numerics_tags(device: str) -> dict[str, str]:
    """Tags ``svpkit.cpu_capability``, ``svpkit.numerics``, ``svpkit.math_libraries``, ``svpkit.hardware``:
    what the run's float results depend on besides its seed (docs/reliability.md). Not matched on
    (a full-data reference from another machine still counts); ``svpkit compare`` notes a mix."""
    return setting_tags(numerics_fingerprint(device))


def resolved_settings(proxy: ModelSpec | None, target: ModelSpec, cfg: Any) -> dict[str, Any]:
    """Device, epochs and model options as the run uses them (``None`` epochs: the model's own)."""
    settings: dict[str, Any] = {"device": str(resolve_device(cfg.device))}
    if proxy is not None:
        settings["proxy_epochs"] = cfg.proxy_epochs or proxy.train.epochs
        settings["proxy_options"] = format_options(cfg.proxy_options)
    settings["target_epochs"] = cfg.target_epochs or target.train.epochs
    settings["target_options"] = format_options(cfg.target_options)
    models = {"target": (target, cfg.target_options), **({"proxy": (proxy, cfg.proxy_options)} if proxy else {})}
    settings["amp"] = amp_tag(models, resolve_device(cfg.device))  # tag svpkit.amp (Tag.AMP)
    return settings


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
        **resolved_settings(proxy, target, cfg),
        **selector_settings(cfg),
        "batch_size": cfg.batch_size or "model default",
        "train_size": len(dataset.train),
        "test_size": len(dataset.test),
        "dataset_digest": dataset.digest,
    }
