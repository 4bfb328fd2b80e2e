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

from svpkit.protocols import Learner, TrainObserver

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


@dataclass
class Ranking:
    """A core-set ranking. ``order``: every training index, best (kept first) to worst.
    ``scores[i]``: the score of training example ``i`` (higher = kept sooner). ``seeds``: random
    seed points that start the ranking (k-center; else empty)."""

    order: np.ndarray
    scores: np.ndarray
    seeds: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@dataclass
class RankContext:
    """What a selector's ``rank`` sees: the proxy trained on all ``num_train`` training examples.

    ``learner`` is None for selectors with no needs; ``signals`` is what the training observer
    returned. ``subset_size`` and ``seed_count`` are the core-set sizes (k-center grows its
    ``seed_count`` random seeds to ``subset_size`` centres); ``rng`` draws the seeds.
    """

    learner: Learner | None
    signals: dict[str, torch.Tensor]
    num_train: int
    subset_size: int
    seed_count: int
    rng: np.random.Generator

    def draw_seeds(self) -> np.ndarray:
        """``seed_count`` distinct training indices drawn from ``rng``, ascending."""
        return np.sort(self.rng.choice(self.num_train, size=self.seed_count, replace=False)).astype(np.int64)


@dataclass(frozen=True)
class SelectorSpec:
    name: str
    select: Callable[[SelectionContext, int], Selection]
    needs: frozenset[str] = frozenset()
    description: str = ""
    observer: Callable[[], TrainObserver] | None = None
    """Factory of the training observer for ``training_dynamics`` selectors; its
    ``result()`` dict becomes ``SelectionContext.signals``."""
    rank: Callable[[RankContext], Ranking] | None = None
    """Core-set ranking of the whole training set; without it the core-set loop asks ``select``
    to pick the whole pool in order."""
    select_sharded: Callable[[SelectionContext, int], Selection] | None = None
    """``select`` for a pool split across ``torchrun`` ranks: ``pool_embeddings`` holds this rank's
    shard of the pool only (:func:`svpkit.parallel.shard_range` order); the picks must equal
    ``select`` on the whole pool, on every rank."""

    def __post_init__(self) -> None:
        unknown = set(self.needs) - NEEDS
        if unknown:
            raise ValueError(f"selector {self.name!r} needs unknown signals {sorted(unknown)}")
        if "training_dynamics" in self.needs and self.observer is None:
            raise ValueError(f"selector {self.name!r} needs training dynamics but has no observer")


def rank_descending(scores: torch.Tensor) -> torch.Tensor:
    """Positions sorted by score, highest first; ties keep the pool's (ascending index) order."""
    return torch.sort(scores, descending=True, stable=True).indices


def ranking_by_score(scores: torch.Tensor) -> Ranking:
    """All training examples by ``scores`` (one per example), highest first, ties towards the lower index."""
    order = rank_descending(scores).cpu().numpy()
    return Ranking(order.astype(np.int64), scores.cpu().numpy().astype(np.float32))


def top_k_by_score(ctx: SelectionContext, scores: torch.Tensor, k: int) -> Selection:
    order = rank_descending(scores)[:k].cpu().numpy()
    return Selection(picks=ctx.pool[order], scores=scores.float().cpu().numpy())
