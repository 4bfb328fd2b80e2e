"""Per-model options: the knobs a model or its learner takes beyond the training schedule.

A model declares its options (:class:`ModelOption`: name, type, default, help); torch models also
take the torch learner's own (:data:`svpkit.learners.options.TORCH_LEARNER_OPTIONS`). On the
command line they are one string per model (:func:`parse_options_text`), checked against the
declaration by :func:`svpkit.learners.options.parse_model_options` before any run exists. Runs
log them in canonical form (sorted ``key=value`` pairs) as params ``proxy_options`` and
``target_options``; a model with options is a different selector or target model for
``svpkit compare`` and for the baseline role (:func:`model_label`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from svpkit.options import ModelOption, check_known, parse_options_text

if TYPE_CHECKING:
    from svpkit.models.base import ModelSpec

__all__ = ["ModelOption", "check_known", "option_defaults", "parse_options_text"]


def option_defaults(spec: ModelSpec, given: Mapping[str, object]) -> dict[str, object]:
    """The model's own declared options (not the learner's), defaults overridden by ``given``."""
    return {o.name: given.get(o.name, o.default) for o in spec.options}
