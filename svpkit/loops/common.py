"""Pieces every SVP loop shares."""

from __future__ import annotations

from svpkit.contract import Tag, format_options, setting_tags
from svpkit.data.base import Dataset
from svpkit.learners.acceleration import amp_tag
from svpkit.loops.scoring import selector_settings
from svpkit.loops.settings import LoopSettings, SelectionConfig
from svpkit.models.base import ModelSpec
from svpkit.runtime import numerics_fingerprint, resolve_device
from svpkit.selectors.base import SelectorSpec


def run_role(selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, settings: LoopSettings) -> str:
    """``random`` (no selector model), ``baseline`` (the selector model is the target, same
    schedule and options) or ``proxy``: the tag ``svpkit.role`` that pairs runs in ``svpkit compare``."""
    if not selector.needs:
        return "random"
    same_epochs = (settings.proxy_epochs or proxy.train.epochs) == (settings.target_epochs or target.train.epochs)
    same_options = format_options(settings.proxy_options) == format_options(settings.target_options)
    return "baseline" if proxy.name == target.name and same_epochs and same_options else "proxy"


def selection_run_tags(
    loop: str, dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: SelectionConfig
) -> dict[str, str]:
    """The tags every selection run carries (the keys ``svpkit compare`` pairs runs by)."""
    dataset.require_labels(f"the {loop} loop")  # a simulation: every label must be known
    settings = cfg.settings
    described = resolved_settings(proxy, target, settings) | selector_settings(settings, cfg.selection_variant())
    return {
        Tag.LOOP: loop,
        Tag.ROLE: run_role(selector, proxy, target, settings),
        Tag.DATASET: dataset.name,
        Tag.SELECTOR: selector.name,
        Tag.SELECTOR_MODEL: proxy.name if selector.needs else "none",
        Tag.TARGET_MODEL: target.name,
        Tag.SEED: str(settings.seed),
        **setting_tags(described | dataset_settings(dataset)),
        **numerics_tags(settings.device),
    }


def dataset_settings(dataset: Dataset) -> dict[str, str]:
    """The data-set options the run loaded it with (canonical text), how it reads it (memory or stream)
    and, seen through a backbone, the backbone and its embedding store (``backbone:<key digest>``)."""
    return {"dataset_options": format_options(dataset.options), "data_access": dataset.access, **dataset.backbone}


def numerics_tags(device: str) -> dict[str, str]:
    """Tags ``svpkit.cpu_capability``, ``svpkit.numerics``, ``svpkit.math_libraries``, ``svpkit.hardware``:
    what the run's float results depend on besides its seed (docs/reliability.md). Not matched on
    (a full-data reference from another machine still counts); ``svpkit compare`` notes a mix."""
    return setting_tags(numerics_fingerprint(device))


def resolved_settings(proxy: ModelSpec | None, target: ModelSpec, settings: LoopSettings) -> dict[str, object]:
    """Device, epochs and model options as the run uses them (``None`` epochs: the model's own)."""
    device = resolve_device(settings.device)
    resolved: dict[str, object] = {"device": str(device)}
    models = {"target": (target, settings.target_options)}
    if proxy is not None:
        models["proxy"] = (proxy, settings.proxy_options)
        resolved["proxy_epochs"] = settings.proxy_epochs or proxy.train.epochs
        resolved["proxy_options"] = format_options(settings.proxy_options)
    resolved["target_epochs"] = settings.target_epochs or target.train.epochs
    resolved["target_options"] = format_options(settings.target_options)
    resolved["amp"] = amp_tag(models, device)  # tag svpkit.amp (Tag.AMP)
    return resolved


def selection_run_params(
    dataset: Dataset, selector: SelectorSpec, proxy: ModelSpec, target: ModelSpec, cfg: SelectionConfig
) -> dict[str, object]:
    """The params every selection run logs: names, seed, device, schedules, data set identity."""
    settings = cfg.settings
    return {
        "dataset": dataset.name,
        "selector": selector.name,
        "proxy": proxy.name,
        "target": target.name,
        "seed": settings.seed,
        **resolved_settings(proxy, target, settings),
        **selector_settings(settings, cfg.selection_variant()),
        **dataset_settings(dataset),
        "batch_size": settings.batch_size or "model default",
        "train_size": len(dataset.train),
        "test_size": len(dataset.test),
        "dataset_digest": dataset.digest,
    }
