"""The settings every SVP loop shares, as one object that each loop's config is composed of.

``ALConfig``, ``CoreSetConfig``, ``TrainRunConfig``, ``QueryConfig`` and ``SuggestConfig`` each hold
one :class:`LoopSettings` (``cfg.settings``) beside their own fields, so a setting has one
definition, one default and one reader: :meth:`LoopSettings.learner_options` is how a loop hands a
proxy or a target learner its seed, device, batch size, determinism, epochs and model options.
The validation pass's plan builds it (:meth:`svpkit.loops.plan.Plan.loop_settings`); nothing changes it afterwards
(it is frozen). This module imports nothing of the loops.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, Protocol

from svpkit.protocols import LearnerOptions
from svpkit.runtime import resolve_device

Role = Literal["proxy", "target"]
"""Which model of the run: the selector model (proxy) or the target."""


@dataclass(frozen=True)
class LoopSettings:
    """The run's choices every loop shares: seed, device, batch size and determinism; each model's
    schedule and options; the selector's options, class balance and proxy–target agreement."""

    seed: int = 0
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` (svpkit.runtime.resolve_device)."""
    batch_size: int | None = None
    """None: each model's own training batch size."""
    deterministic: bool = False
    """PyTorch's deterministic algorithms; on a CPU also the portable numerics (docs/reliability.md)."""
    proxy_epochs: int | None = None
    """None: the selector model's default schedule."""
    target_epochs: int | None = None
    proxy_options: dict[str, object] = field(default_factory=dict)
    """Options of the selector model (``--proxy-options``; svpkit.learners.options)."""
    target_options: dict[str, object] = field(default_factory=dict)
    selector_options: dict[str, object] = field(default_factory=dict)
    """The selector's resolved options (``--selector-options``)."""
    class_balance: bool = False
    """Selections keep class proportions (active learning: over the selector model's predicted classes)."""
    agreement: str = "auto"
    """``--agreement``: auto, off, scores or full (svpkit.loops.agreement)."""

    def epochs(self, role: Role) -> int | None:
        """The run's epochs for ``role`` (None: the model's own)."""
        return self.proxy_epochs if role == "proxy" else self.target_epochs

    def model_options(self, role: Role) -> dict[str, object]:
        """The run's model options for ``role``."""
        return self.proxy_options if role == "proxy" else self.target_options

    def learner_options(self, role: Role, seed: int) -> LearnerOptions:
        """What a loop hands the ``role`` learner: ``seed`` (derived for its role and round) and the
        run's device, batch size, determinism, epochs and model options."""
        return self.options_for(seed, self.epochs(role), self.model_options(role))

    def options_for(self, seed: int, epochs: int | None, model_options: Mapping[str, object]) -> LearnerOptions:
        """Learner options with this run's device, batch size and determinism and the given schedule
        (suggest-proxy's candidates each bring their own epochs and options)."""
        return LearnerOptions(
            seed=seed,
            device=str(resolve_device(self.device)),
            epochs=epochs,
            batch_size=self.batch_size,
            deterministic=self.deterministic,
            extra=dict(model_options),
        )


class SelectionConfig(Protocol):
    """A selection loop's config (``ALConfig``, ``CoreSetConfig``) as the shared describers read it:
    the shared settings and the loop's selection variant (class balance, initial selector, coverage…)."""

    @property
    def settings(self) -> LoopSettings: ...

    def selection_variant(self) -> dict[str, object]: ...
