"""Selectors from a notebook's scoring functions (docs/python-api.md#your-own-data-and-model).

:func:`selector_spec` makes a score-based :class:`SelectorSpec` from ``probs -> scores``: the
pool's softmax probabilities (a float tensor N×C) in, one number per example out (a tensor, array
or list); the highest are picked first in active learning and kept first in core-set selection,
ties towards the lower index (as the built-in uncertainty selectors).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from svpkit.data.objects import qualname
from svpkit.errors import DataError
from svpkit.selectors.base import (
    RankContext,
    Ranking,
    Selection,
    SelectionContext,
    SelectorSpec,
    ranking_by_score,
    top_k_by_score,
)

ScoreFunction = Callable[[torch.Tensor], Any]


def checked_scores(score: ScoreFunction, probs: torch.Tensor) -> torch.Tensor:
    """``score(probs)`` as one float per row; a DataError for anything else."""
    out = score(probs)
    try:
        scores = out if isinstance(out, torch.Tensor) else torch.as_tensor(np.asarray(out))
    except (TypeError, ValueError, RuntimeError):
        scores = None
    if (
        scores is None
        or scores.shape != (probs.shape[0],)
        or not (scores.is_floating_point() or scores.dtype.is_signed)
    ):
        plain = isinstance(out, (torch.Tensor, np.ndarray, list))
        got = f"shape {tuple(scores.shape)}" if scores is not None and plain else f"a {qualname(out)}"
        raise DataError(
            f"selector {qualname(score)} returned {got}, not one number per pool example (shape ({probs.shape[0]},))"
        )
    return scores.to(probs.device).float()


def selector_spec(score: ScoreFunction, name: str) -> SelectorSpec:
    """A score-based :class:`SelectorSpec` from ``probs -> scores`` (see the module's doc)."""

    def select(ctx: SelectionContext, k: int) -> Selection:
        assert ctx.probabilities is not None
        return top_k_by_score(ctx, checked_scores(score, ctx.probabilities.float()), k)

    def rank(ctx: RankContext) -> Ranking:
        assert ctx.learner is not None
        return ranking_by_score(checked_scores(score, ctx.learner.predict_proba(None, "train").float()))

    return SelectorSpec(
        name, select, frozenset({"probabilities"}), f"scores from {qualname(score)}", rank=rank, score_based=True
    )
