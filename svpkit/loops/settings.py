"""What the loops read of a run's config, as protocols: one place that names the settings a
piece of a loop needs, so that no function takes an untyped config.

``ALConfig``, ``CoreSetConfig``, ``TrainRunConfig``, ``QueryConfig`` and ``SuggestConfig``
satisfy the protocols their loops use; this module imports nothing of the loops.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable


class TargetSettings(Protocol):
    """The device and the target's schedule and options (every loop that trains a target)."""

    device: str
    target_epochs: int | None
    target_options: dict[str, Any]


@runtime_checkable
class ModelOverrides(TargetSettings, Protocol):
    """The proxy's schedule and options, beside the target's (the selection loops)."""

    proxy_epochs: int | None
    proxy_options: dict[str, Any]


class SelectionSettings(Protocol):
    """What choosing a batch or a subset reads beyond the selector: its options, class balance."""

    class_balance: bool
    selector_options: dict[str, Any]


@runtime_checkable
class SubsetSettings(SelectionSettings, Protocol):
    """The core-set subset's variants: coverage-centric sampling and averaged score models."""

    seed: int
    coverage: str
    ccs_cutoff: float
    ccs_bins: int
    score_models: int


class AgreementSettings(ModelOverrides, Protocol):
    """What proxy–target agreement in an active-learning run reads."""

    seed: int
    agreement: str
    train_target: bool
    selector_options: dict[str, Any]
