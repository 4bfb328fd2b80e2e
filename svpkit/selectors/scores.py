"""Score building blocks shared by several selectors, in a module that imports no selector.

``entropy_scores`` (uncertainty, BALD), ``has_final_linear`` (BADGE, BALD) and ``MCAccumulator``
(the Monte-Carlo samples a :class:`~svpkit.selectors.base.SelectionContext` carries for BALD)
live here, so ``selectors.base`` and the rules that use them import them without a circle.
"""

from __future__ import annotations

import torch


def entropy_scores(probs: torch.Tensor) -> torch.Tensor:
    """−Σ p log p with 0·log 0 = 0 (no NaN rows)."""
    logs = torch.where(probs > 0, probs.log(), torch.zeros_like(probs))
    return -(probs * logs).sum(dim=1)


def has_final_linear(model: object) -> bool:
    """Whether ``model`` is a torch module with an ``nn.Linear`` in it, i.e. a classifier that
    :func:`svpkit.models.base.final_linear` finds (the last one); BADGE embeds its gradient."""
    return isinstance(model, torch.nn.Module) and any(isinstance(m, torch.nn.Linear) for m in model.modules())


class MCAccumulator:
    """Running sums over Monte-Carlo samples of an N × C probability matrix.

    Keeps Σ_t p_t (N × C) and Σ_t H(p_t) (N) in float32; :meth:`add` one sample at a time.
    """

    def __init__(self) -> None:
        self.sum_probs: torch.Tensor | None = None
        self.sum_entropy: torch.Tensor | None = None
        self.count = 0

    def add(self, probs: torch.Tensor) -> None:
        """Fold in one sample: an N × C matrix of probabilities (rows sum to 1)."""
        p = probs.float()
        if self.sum_probs is None or self.sum_entropy is None:
            self.sum_probs = p.clone()
            self.sum_entropy = entropy_scores(p)
        else:
            if p.shape != self.sum_probs.shape:
                raise ValueError(f"MC sample of shape {tuple(p.shape)} after samples of {tuple(self.sum_probs.shape)}")
            self.sum_probs += p
            self.sum_entropy += entropy_scores(p)
        self.count += 1

    def mean_probs(self) -> torch.Tensor:
        """The MC mean 1/T Σ_t p_t (N × C)."""
        if self.sum_probs is None:
            raise ValueError("no Monte-Carlo sample was added")
        return self.sum_probs / self.count

    def entropy(self) -> torch.Tensor:
        """H(mean_t p_t): the predictive entropy of the MC mean (N)."""
        return entropy_scores(self.mean_probs())

    def bald(self) -> torch.Tensor:
        """H(mean_t p_t) − mean_t H(p_t), clamped at 0 (Jensen: negatives are rounding only)."""
        predictive = self.entropy()  # raises when no sample was added
        assert self.sum_entropy is not None
        return (predictive - self.sum_entropy / self.count).clamp_min_(0.0)
