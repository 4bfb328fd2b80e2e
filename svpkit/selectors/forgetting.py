"""Forgetting events (paper Algorithm 2; Toneva et al. 2019) as a training-dynamics selector.

While the selector model trains, :class:`ForgettingTracker` watches every training minibatch's own
forward pass (train mode, augmented input, before the update; no extra forward pass) and keeps
three length-N vectors on the learner's device (O(N) memory, no host synchronisation):

- ``last_correct``: was the example classified correctly at its previous presentation? It starts
  as "not yet correct", so the first presentation is never an event;
- ``events``: correct → incorrect transitions between consecutive presentations;
- ``ever_correct``: whether any presentation was correct.

The score of an example is its number of forgetting events, or +∞ if it was never classified
correctly (never learned, including never presented). Ranking takes the highest score first
(never-learned examples first), ties towards the lower training index (stable sort). A
learned-then-forgotten example (correct, wrong, wrong, wrong) counts 1. Core-set ranking orders
all training examples the same way from the proxy's training minibatches.
"""

from __future__ import annotations

import numpy as np
import torch

from svpkit.errors import ConfigError
from svpkit.selectors.base import (
    RankContext,
    Ranking,
    Selection,
    SelectionContext,
    SelectorSpec,
    ranking_by_score,
    top_k_by_score,
)

SIGNAL = "forgetting_events"
PRESENTATIONS = "forgetting_presentations"


class ForgettingTracker:
    """A :class:`~svpkit.protocols.TrainObserver` counting forgetting events per example."""

    def __init__(self) -> None:
        self.last_correct: torch.Tensor | None = None
        self.events: torch.Tensor | None = None
        self.ever_correct: torch.Tensor | None = None
        self.presentations: torch.Tensor | None = None

    def on_fit_start(self, num_train: int, device: torch.device) -> None:
        self.last_correct = torch.zeros(num_train, dtype=torch.bool, device=device)
        self.ever_correct = torch.zeros(num_train, dtype=torch.bool, device=device)
        self.events = torch.zeros(num_train, dtype=torch.int32, device=device)
        self.presentations = torch.zeros(num_train, dtype=torch.int32, device=device)

    def on_train_batch(self, indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None:
        if self.last_correct is None or self.events is None or self.ever_correct is None or self.presentations is None:
            raise RuntimeError("ForgettingTracker.on_fit_start must run before on_train_batch")
        correct = logits.argmax(dim=1) == targets
        # A minibatch holds distinct examples (one epoch is a permutation), so plain indexed
        # read-modify-write is exact; index_add_ keeps it right even if a batch repeated one.
        forgot = self.last_correct[indices] & ~correct
        self.events.index_add_(0, indices, forgot.to(torch.int32))
        self.presentations.index_add_(0, indices, torch.ones_like(indices, dtype=torch.int32))
        self.last_correct[indices] = correct
        self.ever_correct[indices] |= correct

    def scores(self) -> torch.Tensor:
        """Forgetting events per training example as float32; +∞ where never correct."""
        if self.events is None or self.ever_correct is None:
            raise RuntimeError("no training was observed")
        counts = self.events.to(torch.float32)
        return torch.where(self.ever_correct, counts, torch.full_like(counts, float("inf")))

    def result(self) -> dict[str, torch.Tensor]:
        assert self.presentations is not None
        return {SIGNAL: self.scores(), PRESENTATIONS: self.presentations.clone()}


def forgetting_scores(ctx: SelectionContext) -> torch.Tensor:
    """Scores of ``ctx.pool`` from the observer's signal (checked: every pool example was trained on)."""
    if SIGNAL not in ctx.signals:
        raise RuntimeError("forgetting_events needs the selector model's training dynamics (no signal recorded)")
    pool = torch.as_tensor(ctx.pool, dtype=torch.long, device=ctx.signals[SIGNAL].device)
    presented = ctx.signals.get(PRESENTATIONS)
    if presented is not None and pool.numel() and bool((presented[pool] == 0).any()):
        raise ConfigError(
            "forgetting_events ranks examples the selector model was trained on; these pool examples "
            "were never presented (use it for core-set selection, where the proxy trains on all data)"
        )
    return ctx.signals[SIGNAL][pool]


def select_forgetting(ctx: SelectionContext, k: int) -> Selection:
    return top_k_by_score(ctx, forgetting_scores(ctx), k)


def rank_forgetting(ctx: RankContext) -> Ranking:
    """Every training example by its forgetting events (never learned first)."""
    pool = np.arange(ctx.num_train, dtype=np.int64)
    everything = SelectionContext(pool=pool, labeled=np.empty(0, dtype=np.int64), rng=ctx.rng, signals=ctx.signals)
    return ranking_by_score(forgetting_scores(everything))


SPECS = [
    SelectorSpec(
        "forgetting_events",
        select_forgetting,
        frozenset({"training_dynamics"}),
        "most forgetting events during the proxy's training first, never-learned first (paper Alg. 2; core-set)",
        observer=ForgettingTracker,
        rank=rank_forgetting,
        score_based=True,
    )
]
