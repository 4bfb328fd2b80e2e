"""The selector contract.

A selector declares what it needs from the selector model, and the loops compute only that:
``"probabilities"`` (softmax over the pool), ``"embeddings"`` (penultimate activations of the pool
and of the labeled/seed set) or ``"training_dynamics"`` (a :class:`TrainObserver` attached to the
selector model's training). A selector with no needs (``random``) trains no model at all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from svpkit.protocols import TrainObserver

NEEDS = frozenset({"probabilities", "embeddings", "training_dynamics"})


@dataclass
class SelectionContext:
    """What a selector sees. Indices are training-set indices in the data set's original order.

    ``probabilities`` and ``pool_embeddings`` rows align with ``pool``; ``labeled_embeddings``
    rows align with ``labeled`` (the initial centres for k-center). ``signals`` holds what a
    training-dynamics observer returned (over *all* training examples).
    """

    pool: np.ndarray
    labeled: np.ndarray
    rng: np.random.Generator
    device: torch.device = torch.device("cpu")
    probabilities: torch.Tensor | None = None
    pool_embeddings: torch.Tensor | None = None
    labeled_embeddings: torch.Tensor | None = None
    signals: dict[str, torch.Tensor] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Selection:
    """``picks``: chosen training indices in pick order; ``scores``: one float per pool entry
    (aligned with ``SelectionContext.pool``; higher means wanted sooner)."""

    picks: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class SelectorSpec:
    name: str
    select: Callable[[SelectionContext, int], Selection]
    needs: frozenset[str] = frozenset()
    description: str = ""
    observer: Callable[[], TrainObserver] | None = None
    """Factory of the training observer for ``training_dynamics`` selectors; its
    ``result()`` dict becomes ``SelectionContext.signals``."""

    def __post_init__(self) -> None:
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"selector {self.name!r} needs unknown signals {sorted(unknown)}")
        if "training_dynamics" in self.needs and self.observer is None:
            raise ValueError(f"selector {self.name!r} needs training dynamics but has no observer")


def rank_descending(scores: torch.Tensor) -> torch.Tensor:
    """Positions sorted by score, highest first; ties keep the pool's (ascending index) order."""
    return torch.sort(scores, descending=True, stable=True).indices


def top_k_by_score(ctx: SelectionContext, scores: torch.Tensor, k: int) -> Selection:
    order = rank_descending(scores)[:k].cpu().numpy()
    return Selection(picks=ctx.pool[order], scores=scores.float().cpu().numpy())
