"""Uncertainty sampling from the selector model's softmax (paper §3.1).

Ties are broken deterministically: among equal scores the lower training index comes first.
"""

from __future__ import annotations

import torch

from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec, top_k_by_score


def least_confidence_scores(probs: torch.Tensor) -> torch.Tensor:
    """1 − max_c p(c): ranking by it descending = ranking max-probability ascending."""
    return 1.0 - probs.max(dim=1).values


def entropy_scores(probs: torch.Tensor) -> torch.Tensor:
    """−Σ p log p with 0·log 0 = 0 (no NaN rows)."""
    logs = torch.where(probs > 0, probs.log(), torch.zeros_like(probs))
    return -(probs * logs).sum(dim=1)


def margin_scores(probs: torch.Tensor) -> torch.Tensor:
    """1 − (p₁ − p₂), the gap between the two most likely classes."""
    top2 = probs.topk(min(2, probs.shape[1]), dim=1).values
    second = top2[:, 1] if top2.shape[1] > 1 else torch.zeros_like(top2[:, 0])
    return 1.0 - (top2[:, 0] - second)


def _uncertainty(score_fn):  # type: ignore[no-untyped-def]
    def select(ctx: SelectionContext, k: int) -> Selection:
        assert ctx.probabilities is not None
        return top_k_by_score(ctx, score_fn(ctx.probabilities.float()), k)

    return select


SPECS = [
    SelectorSpec(
        "least_confidence",
        _uncertainty(least_confidence_scores),
        frozenset({"probabilities"}),
        "highest 1 - max softmax probability first",
    ),
    SelectorSpec(
        "entropy",
        _uncertainty(entropy_scores),
        frozenset({"probabilities"}),
        "highest predictive entropy -sum p log p first",
    ),
    SelectorSpec(
        "margin",
        _uncertainty(margin_scores),
        frozenset({"probabilities"}),
        "smallest gap between the top two probabilities first",
    ),
]
