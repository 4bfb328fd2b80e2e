"""What a selector needs from the selector model, computed across ``torchrun`` ranks.

Under ``torchrun`` each rank scores a contiguous shard of the pool and the shards are gathered in
pool order (:func:`svpkit.parallel.sharded_rows`), so every rank holds what one process would. A
selector with a sharded implementation (``SelectorSpec.select_sharded``: greedy k-center) keeps
only this rank's shard of the pool embeddings instead; its picks are identical on every rank, so
all ranks keep the same labeled set.
"""

from __future__ import annotations

from svpkit import parallel
from svpkit.protocols import Learner
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec

SHARD_OPTION = "svpkit.pool_shard"
"""``SelectionContext.options`` key: (start, stop) of this rank's pool shard when the pool
embeddings in the context are the shard only (sharded selectors)."""


def fill_selection_context(ctx: SelectionContext, learner: Learner, selector: SelectorSpec) -> None:
    """Compute what ``selector`` needs over ``ctx.pool`` / ``ctx.labeled``, sharded across ranks.

    Probabilities (and embeddings for selectors without a sharded implementation) are gathered
    in full on every rank; a sharded selector keeps only this rank's pool shard of embeddings.
    """
    if "probabilities" in selector.needs:
        ctx.probabilities = parallel.sharded_rows(lambda ix: learner.predict_proba(ix), ctx.pool)
    if "embeddings" in selector.needs:
        ctx.labeled_embeddings = parallel.sharded_rows(lambda ix: learner.embed(ix), ctx.labeled)
        shard = parallel.local_shard(len(ctx.pool)) if selector.select_sharded is not None else None
        if shard is not None:
            start, stop = shard
            ctx.pool_embeddings = learner.embed(ctx.pool[start:stop])
            ctx.options[SHARD_OPTION] = shard
        else:
            ctx.pool_embeddings = parallel.sharded_rows(lambda ix: learner.embed(ix), ctx.pool)


def select(selector: SelectorSpec, ctx: SelectionContext, k: int) -> Selection:
    """Run ``selector``: its sharded implementation when the context holds a pool shard."""
    if SHARD_OPTION in ctx.options and selector.select_sharded is not None:
        return selector.select_sharded(ctx, k)
    return selector.select(ctx, k)
