"""Uncertainty sampling from the selector model's softmax (paper §3.1).

Ties are broken deterministically: among equal scores the lower training index comes first.
Core-set ranking scores every training example from the proxy's eval-mode softmax; order =
stable descending sort (ties towards the lower index).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from svpkit.selectors.base import (
    RankContext,
    Ranking,
    Selection,
    SelectionContext,
    SelectorSpec,
    ranking_by_score,
    top_k_by_score,
)
from svpkit.selectors.scores import entropy_scores

ScoreFunction = Callable[[torch.Tensor], torch.Tensor]


def least_confidence_scores(probs: torch.Tensor) -> torch.Tensor:
    """1 − max_c p(c): ranking by it descending = ranking max-probability ascending."""
    return 1.0 - probs.max(dim=1).values


def margin_scores(probs: torch.Tensor) -> torch.Tensor:
    """1 − (p₁ − p₂), the gap between the two most likely classes."""
    top2 = probs.topk(min(2, probs.shape[1]), dim=1).values
    second = top2[:, 1] if top2.shape[1] > 1 else torch.zeros_like(top2[:, 0])
    return 1.0 - (top2[:, 0] - second)


def _uncertainty(score_fn: ScoreFunction) -> Callable[[SelectionContext, int], Selection]:
    def select(ctx: SelectionContext, k: int) -> Selection:
        assert ctx.probabilities is not None
        return top_k_by_score(ctx, score_fn(ctx.probabilities.float()), k)

    return select


def _uncertainty_ranking(score_fn: ScoreFunction) -> Callable[[RankContext], Ranking]:
    def rank(ctx: RankContext) -> Ranking:
        assert ctx.learner is not None
        return ranking_by_score(score_fn(ctx.learner.predict_proba(None, "train").float()))

    return rank


def _spec(name: str, score_fn: ScoreFunction, description: str) -> SelectorSpec:
    return SelectorSpec(
        name,
        _uncertainty(score_fn),
        frozenset({"probabilities"}),
        description,
        rank=_uncertainty_ranking(score_fn),
        score_based=True,
    )


SPECS = [
    _spec("least_confidence", least_confidence_scores, "highest 1 - max softmax probability first"),
    _spec("entropy", entropy_scores, "highest predictive entropy -sum p log p first"),
    _spec("margin", margin_scores, "smallest gap between the top two probabilities first"),
]
