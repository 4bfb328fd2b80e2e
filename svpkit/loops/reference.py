"""The full-data reference of a core-set run: the target trained on all data in a ``train`` run.

The end-to-end speed-up divides its training seconds by proxy + ranking + target-on-subset
seconds. The lookup takes a FINISHED ``train`` run of the same data set (same content digest),
size and target; the automatic lookup also demands the same target epochs, options and device.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from svpkit.contract import TRAIN, Metric, Tag, run_setting
from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.loops.common import resolved_settings
from svpkit.loops.settings import LoopSettings
from svpkit.models.base import ModelSpec


@dataclass
class FullReference:
    """The target trained on all data: where the end-to-end speed-up's numerator comes from."""

    train_seconds: float
    test_error: float
    source: str
    """A run id, or ``"this run"`` when the loop trained it (``compare_full``)."""


def full_reference_mismatch(
    record: Any, dataset: Dataset, target: ModelSpec, settings: LoopSettings, strict: bool = True
) -> str | None:
    """Why a run (``tracking.RunRecord``-like: status, tags, params, metrics) cannot serve as the
    target-on-all-data reference, or None when it can. ``strict`` (the automatic lookup) also
    demands the same target epochs, target options and device, so that the seconds are comparable."""
    tags, params, metrics = record.tags, record.params, record.metrics
    n = len(dataset.train)
    checks = [
        (record.status == "FINISHED", f"it is {record.status}, not FINISHED"),
        (tags.get(Tag.LOOP) == TRAIN.name, f"it is a {tags.get(Tag.LOOP, 'non-svpkit')!r} run, not a train run"),
        (tags.get(Tag.DATASET) == dataset.name, f"its data set is {tags.get(Tag.DATASET)!r}"),
        (params.get("dataset_digest") == dataset.digest, "its data set's content digest differs"),
        (tags.get(Tag.SUBSET_SIZE) == str(n), f"it trained on {tags.get(Tag.SUBSET_SIZE)} of {n} examples"),
        (tags.get(Tag.TARGET_MODEL) == target.name, f"its target is {tags.get(Tag.TARGET_MODEL)!r}"),
        (
            Metric.TARGET_TRAIN_SECONDS in metrics and Metric.TARGET_ERROR in metrics,
            "it has no target/train_seconds and target/test_error metrics",
        ),
    ]
    if strict:
        checks += _setting_checks(tags, params, target, settings)
    for ok, reason in checks:
        if not ok:
            return reason
    return None


def _setting_checks(
    tags: dict[str, str], params: dict[str, str], target: ModelSpec, settings: LoopSettings
) -> list[tuple[bool, str]]:
    """Same target epochs, target options and device as the run being compared (strict lookup)."""
    want = {k: str(v) for k, v in resolved_settings(None, target, settings).items()}
    got = {name: run_setting(tags, params, name) for name in want}
    return [
        (
            got["target_epochs"] == want["target_epochs"],
            f"it trained {got['target_epochs']} epochs, not {want['target_epochs']}",
        ),
        (
            got["target_options"] == want["target_options"],
            f"its target options are {got['target_options'] or 'none'!r}, not {want['target_options'] or 'none'!r}",
        ),
        (got["device"] == want["device"], f"it ran on {got['device']}"),
    ]


def choose_full_reference(
    records: list[Any], dataset: Dataset, target: ModelSpec, settings: LoopSettings
) -> FullReference | None:
    """The matching train run of the same seed if any, else the newest matching one."""
    matching = [r for r in records if full_reference_mismatch(r, dataset, target, settings) is None]
    if not matching:
        return None
    matching.sort(key=lambda r: (r.tags.get(Tag.SEED) == str(settings.seed), r.start_time), reverse=True)
    best = matching[0]
    return FullReference(
        float(best.metrics[Metric.TARGET_TRAIN_SECONDS]), float(best.metrics[Metric.TARGET_ERROR]), best.run_id
    )


def given_full_reference(record: Any, dataset: Dataset, target: ModelSpec, settings: LoopSettings) -> FullReference:
    """The reference a user named (``full_run``): ConfigError when the run cannot be one; its own
    numbers when it can, though its settings differ from this run's."""
    reason = full_reference_mismatch(record, dataset, target, settings, strict=False)
    if reason:
        raise ConfigError(f"run {record.run_id} cannot be the full-data reference: {reason}")
    chosen = choose_full_reference([record], dataset, target, settings)
    if chosen is None:
        m = record.metrics
        chosen = FullReference(float(m[Metric.TARGET_TRAIN_SECONDS]), float(m[Metric.TARGET_ERROR]), record.run_id)
    return chosen
