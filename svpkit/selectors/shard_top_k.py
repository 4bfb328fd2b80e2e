"""The top k of a pool split across ``torchrun`` ranks, exchanging candidates instead of the pool.

A selector whose ``select`` is the top ``k`` of scores that each depend only on that example's
per-example needs (``SelectorSpec.scores_per_example``: least confidence, margin, entropy, BALD,
MC entropy) needs no rank to hold the whole pool's values. Each rank keeps its contiguous shard's
reductions (``ctx.per_example`` rows of ``ctx.options[POOL_SHARD_OPTION]`` only), computes its
shard's scores with the selector's own ``select``, and sends only its candidates:

- plain top k: its shard's best ``k`` (stable descending sort: ties towards the lower position),
  found without sorting the shard (:func:`~svpkit.selectors.base.top_k_positions`);
- with class quotas (``--class-balance``): also every example within its class's quota on the
  shard (:func:`svpkit.selectors.coverage.within_quotas`), at most ``2k`` in all.

The merged candidates, in pool order, are ranked exactly as the whole pool is on one process
(stable descending sort, or :func:`~svpkit.selectors.coverage.class_balanced_top_k`), so the picks
are one process's (shards are contiguous, so "better" — a higher score, or an equal one at a
lower position — is the same order on a shard as on the pool): a pick of the plain top ``k`` has
fewer than ``k`` better examples in the pool, so fewer on its shard; an example within its class's
quota in the pool is within it on its shard, and its rank among the merged candidates of its class
is its rank in the pool; a fill pick (the best examples left after the quotas) has only picked
examples above it, fewer than ``k``, so it is among its shard's top ``k`` too.

The pool's scores (logged by rank 0 only) are gathered to rank 0 alone
(:func:`svpkit.parallel.gather_to_main`): the other ranks' ``Selection.scores`` are empty. What a
rank holds that grows with the pool is its shard's reductions and scores (and, on rank 0, the
pool's scores, received straight into one tensor); what is exchanged is at most ``2k`` candidates
per rank (a float32 score, an int64 position, an int64 class). Without class balance no rank sorts
or indexes its whole shard (the selector's ``top_k_by_score`` sorts only ``k`` scores too), so
the selection's transients are a block of scores and the candidates, not int64 per pool example;
with class balance a rank sorts its shard once for the quotas.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from svpkit import parallel
from svpkit.contract import POOL_SHARD_OPTION
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec, rank_descending, top_k_positions
from svpkit.selectors.coverage import QuotaSelection, class_balanced_top_k, class_quotas, within_quotas


@dataclass(frozen=True)
class ShardTopK:
    """The result on one rank: the selection (scores on rank 0 only), the class quotas' outcome
    (None without class balance), the pool's candidates per class (all ranks summed) and the
    bytes this rank exchanged and received (the candidates)."""

    selection: Selection
    quotas: QuotaSelection | None
    available: list[int] | None
    candidate_bytes: int


def shard_context(ctx: SelectionContext) -> SelectionContext:
    """``ctx`` restricted to this rank's pool shard (its ``per_example`` rows are the shard's)."""
    start, stop = ctx.options[POOL_SHARD_OPTION]
    return replace(ctx, pool=ctx.pool[start:stop])


def candidates(
    scores: torch.Tensor, k: int, classes: torch.Tensor | None, quotas: Sequence[int] | None
) -> torch.Tensor:
    """This shard's candidate positions, ascending: its top ``k`` and, with ``quotas``, every
    example within its class's quota on the shard. The plain top ``k`` sorts only ``k`` scores
    (:func:`~svpkit.selectors.base.top_k_positions`); with quotas the shard is sorted whole."""
    if classes is None or quotas is None:
        return top_k_positions(scores.float(), k)
    order = rank_descending(scores.float())
    wanted = torch.zeros(order.shape[0], dtype=torch.bool, device=order.device)
    wanted[: min(k, order.shape[0])] = True
    wanted |= within_quotas(classes.to(order.device, torch.long)[order], quotas)
    return torch.sort(order[wanted]).values


def select_top_k(
    selector: SelectorSpec, ctx: SelectionContext, k: int, proportions: Sequence[float] | None = None
) -> ShardTopK:
    """``selector``'s top ``k`` of the whole pool (under class ``proportions`` of the pool's
    ``predicted_class``, when given) from this rank's shard of ``ctx`` (module docstring)."""
    start, stop = ctx.options[POOL_SHARD_OPTION]
    local = shard_context(ctx)
    scores = torch.as_tensor(np.asarray(selector.select(local, min(k, stop - start)).scores, dtype=np.float32))
    classes = quotas = None
    if proportions is not None:
        classes = ctx.value("predicted_class").cpu().long()
        quotas = class_quotas(proportions, k)
    mine = candidates(scores, k, classes, quotas)
    parts = [scores[mine], mine + start] + ([classes[mine]] if classes is not None else [])
    merged = [parallel.all_gather_varying(p) for p in parts]
    sent = sum(p.nbytes for p in parts) + sum(m.nbytes for m in merged)
    values, positions = merged[0], merged[1]
    chosen: QuotaSelection | None = None
    available: list[int] | None = None
    if classes is not None and quotas is not None:
        chosen = class_balanced_top_k(values, merged[2], k, proportions or [])
        top = chosen.picks
        available = parallel.all_sum(torch.bincount(classes, minlength=len(quotas))).tolist()
    else:
        top = rank_descending(values)[:k]
    picks = ctx.pool[positions[top].numpy()].astype(np.int64)
    del parts, merged, values, positions, classes, mine, top  # only the shard's scores go on
    whole = parallel.gather_to_main(scores, parallel.shard_sizes(len(ctx.pool), parallel.world_size()))
    pool_scores = whole.numpy() if whole is not None else np.empty(0, dtype=np.float32)
    return ShardTopK(Selection(picks, pool_scores), chosen, available, sent)
