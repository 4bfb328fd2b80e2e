"""Uncertainty sampling from the selector model's softmax (paper §3.1).

Each rule reads one value per pool example, reduced batch by batch as the pool is scored
(:mod:`svpkit.selectors.reductions`): no N × C matrix is kept. Ties are broken deterministically: among equal scores the lower training index comes first.
Core-set ranking scores every training example from the proxy's eval-mode softmax; order =
stable descending sort (ties towards the lower index).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
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
from svpkit.selectors.reductions import reduce_examples
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


NEED = {"least_confidence": "max_probability", "margin": "margin", "entropy": "entropy"}
"""The per-example value each rule's score is computed from (svpkit.selectors.reductions)."""
FROM_NEED: dict[str, ScoreFunction] = {
    "least_confidence": lambda top: 1.0 - top,
    "margin": lambda gap: 1.0 - gap,
    "entropy": lambda entropy: entropy,
}
"""The score from the per-example value: the same float32 operations as the score functions above
on the whole matrix (the reductions are their parts), so the picks are the full matrix's."""


def uncertainty_scores(name: str, per_example: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Rule ``name``'s pool scores from its per-example value in ``per_example``."""
    need = NEED[name]
    if need not in per_example:
        raise RuntimeError(f"{name} needs the pool's {need!r} (it was not computed)")
    return FROM_NEED[name](per_example[need].float())


SCORES: dict[str, ScoreFunction] = {
    "least_confidence": least_confidence_scores,
    "margin": margin_scores,
    "entropy": entropy_scores,
}


def _uncertainty(name: str) -> Callable[[SelectionContext, int], Selection]:
    def select(ctx: SelectionContext, k: int) -> Selection:
        if NEED[name] not in ctx.per_example and ctx.probabilities is not None:  # a context built by hand
            return top_k_by_score(ctx, SCORES[name](ctx.probabilities.float()), k)
        return top_k_by_score(ctx, uncertainty_scores(name, ctx.per_example), k)

    return select


def _uncertainty_ranking(name: str) -> Callable[[RankContext], Ranking]:
    def rank(ctx: RankContext) -> Ranking:
        assert ctx.learner is not None
        every = np.arange(ctx.num_train, dtype=np.int64)
        return ranking_by_score(uncertainty_scores(name, reduce_examples(ctx.learner, every, [NEED[name]])))

    return rank


def _spec(name: str, description: str) -> SelectorSpec:
    return SelectorSpec(
        name,
        _uncertainty(name),
        frozenset({NEED[name]}),
        description,
        rank=_uncertainty_ranking(name),
        score_based=True,
        scores_per_example=True,
    )


SPECS = [
    _spec("least_confidence", "highest 1 - max softmax probability first"),
    _spec("entropy", "highest predictive entropy -sum p log p first"),
    _spec("margin", "smallest gap between the top two probabilities first"),
]
