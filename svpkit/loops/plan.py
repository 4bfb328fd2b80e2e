"""What the validation pass found: the frozen plan every later step of a run uses.

:func:`svpkit.loops.validate.resolve` reads a command's settings once (names looked up, options,
sizes, switches and the stopping rule parsed, counts' 0 turned into "not given") and returns a
:class:`Plan`; the loop configs, the :class:`~svpkit.loops.settings.LoopSettings` and the data set
are built from it, so nothing is parsed twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Union

from svpkit.loops.settings import LoopSettings

if TYPE_CHECKING:
    from svpkit.backbones.base import Backbone
    from svpkit.data.base import DatasetSpec
    from svpkit.errors import SvpkitError
    from svpkit.loops.stopping import StopRule
    from svpkit.models.base import ModelSpec
    from svpkit.selectors.base import SelectorSpec

Size = Union[float, int]
"""A fraction in (0, 1] (float) or a count (int)."""


@dataclass(frozen=True)
class Plan:
    """A run's settings as the loops use them (None where the pass found a problem, or where the
    command has no such setting)."""

    dataset: DatasetSpec | None = None
    selector: SelectorSpec | None = None
    initial_selector: SelectorSpec | str | None = None
    """``--initial-selector`` looked up (None: ``random``, or a problem; ``"auto"``: settled with the
    loaded data set)."""
    proxy: ModelSpec | None = None
    target: ModelSpec | None = None
    backbone: Backbone | None = None
    """``--backbone`` resolved, its weights file verified (None: none given, or a problem)."""
    data_path: str | None = None
    dataset_options: dict[str, object] = field(default_factory=dict)
    proxy_options: dict[str, object] = field(default_factory=dict)
    target_options: dict[str, object] = field(default_factory=dict)
    selector_options: dict[str, object] = field(default_factory=dict)
    seed: int = 0
    device: str = "auto"
    """As given; each rank's own device comes from it where the run runs."""
    train_limit: int | None = None
    test_limit: int | None = None
    batch_size: int | None = None
    proxy_epochs: int | None = None
    target_epochs: int | None = None
    subset_size: int | None = None
    deterministic: bool = False
    class_balance: bool = False
    compare_full: bool = False
    agreement: str = "auto"
    initial: Size | None = None
    budgets: tuple[Size, ...] = ()
    size: Size | None = None
    seed_size: Size | None = None
    keep: float | None = None
    pilot: Size | None = None
    stop_rule: StopRule | None = None
    problems: tuple[SvpkitError, ...] = ()

    def loop_settings(self, device: str) -> LoopSettings:
        """The settings every loop shares, on ``device`` (this rank's). A deterministic CPU run
        also pins the portable CPU numerics now, before torch first runs (docs/reliability.md)."""
        if self.deterministic:
            from svpkit.runtime import pin_portable_numerics, resolve_device

            if resolve_device(device).type == "cpu":
                pin_portable_numerics()
        return LoopSettings(
            seed=self.seed,
            device=device,
            batch_size=self.batch_size,
            deterministic=self.deterministic,
            proxy_epochs=self.proxy_epochs,
            target_epochs=self.target_epochs,
            proxy_options=self.proxy_options,
            target_options=self.target_options,
            selector_options=self.selector_options,
            class_balance=self.class_balance,
            agreement=self.agreement,
        )
