"""Uniform random selection: the reference every method is compared with. Trains no model."""

from __future__ import annotations

import numpy as np

from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec


def select_random(ctx: SelectionContext, k: int) -> Selection:
    scores = ctx.rng.random(len(ctx.pool))
    order = np.argsort(-scores, kind="stable")[:k]
    return Selection(picks=ctx.pool[order], scores=scores)


SPECS = [
    SelectorSpec("random", select_random, frozenset(), "uniformly random points (no selector model)", score_based=True)
]
