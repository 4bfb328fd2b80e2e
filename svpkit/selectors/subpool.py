"""Options that keep greedy k-center and BADGE tractable on large pools.

``subpool=M`` (default 0: off): on a pool of more than ``M`` unlabeled examples, each round picks
from ``M`` candidates drawn uniformly at random without replacement (never fewer than the batch),
as practitioners do at ImageNet scale (Sener & Savarese and Ash et al. subsample the pool; so do
most BADGE and core-set implementations). The draw is the first thing taken from the round's
selection RNG (derived from the run's seed and the round), so a seed gives the same candidates and
the same picks on every machine and after ``--resume``; with the option off nothing is drawn and
the picks are unchanged. The cost per pick falls from O(N·d) to O(M·d). Given the round's batch,
the loop draws the candidates before scoring (``SelectionContext.candidates``) and the selector
model embeds and scores only them (not with ``--class-balance``, whose quotas need the whole
pool's predicted classes). Pool
entries outside the subpool score ``-inf`` in ``scores.npy``; the round's ``selector_info``
(``timings.json``) records the candidates and the pool size, and the metric
``selection/candidates`` their number. The option is part of
``svpkit.selector_options``, so comparisons keep ``greedy_k_center[subpool=100000]`` apart from
the plain selector.

``storage=fp32|bf16|fp16`` (default fp32): the dtype the selector keeps the embeddings in.
16-bit storage halves the memory of the embeddings (the loop embeds the pool block by block and
keeps only the 16-bit copy: ``svpkit.loops.scoring.embed_stored``); distances still accumulate in
float32 from the stored values. Opt-in because rounding can reorder near-ties: the picks are exactly those
of the rounded features, identical to float32's whenever the features are representable in the
16-bit type (tests/test_k_center_scale.py), and otherwise they may differ (docs/algorithms.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

from svpkit.options import Option
from svpkit.selectors.base import Selection, SelectionContext

SUBPOOL_OPTION = Option(
    "subpool",
    int,
    0,
    "random candidates per round on a larger pool (at least the batch; 0: the whole pool)",
    minimum=0,
)
STORAGE_OPTION = Option(
    "storage",
    str,
    "fp32",
    "dtype the embeddings are kept in (bf16/fp16 halve memory; picks follow the rounded features)",
    choices=("fp32", "bf16", "fp16"),
)
OPTIONS = (SUBPOOL_OPTION, STORAGE_OPTION)
INFO_KEY = "subpool"
"""``Selection.info[INFO_KEY]``: ``{"candidates": M, "pool": N}`` of a round that drew a subpool."""
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def draw_candidates(ctx: SelectionContext, k: int) -> np.ndarray | None:
    """Sorted pool positions of this round's random subpool, or None (option off or pool small enough);
    the ones drawn before scoring (``ctx.candidates``) where the loop drew them."""
    if ctx.candidates is not None:
        return ctx.candidates
    size = max(int(ctx.options.get(SUBPOOL_OPTION.name, 0)), k)
    n = len(ctx.pool)
    if not ctx.options.get(SUBPOOL_OPTION.name) or n <= size:
        return None
    return np.sort(ctx.rng.choice(n, size=size, replace=False)).astype(np.int64)


def storage_dtype(options: Mapping[str, object]) -> torch.dtype:
    """The dtype the ``storage`` option names (float32 where it is missing)."""
    return DTYPES[str(options.get(STORAGE_OPTION.name, STORAGE_OPTION.default))]


def stored(x: torch.Tensor, options: Mapping[str, object]) -> torch.Tensor:
    """``x`` in the ``storage`` dtype the options name (unchanged for fp32 or a missing option)."""
    dtype = storage_dtype(options)
    return x if dtype == torch.float32 else x.to(dtype)


def restrict(ctx: SelectionContext, x: torch.Tensor, candidates: np.ndarray | None) -> torch.Tensor:
    """The rows of ``x`` (aligned with the pool, or already with ``ctx.candidates`` when only they
    were scored) at the candidates, in the ``storage`` dtype."""
    if candidates is not None and ctx.candidates is None:
        x = x[torch.as_tensor(candidates, device=x.device)]
    return stored(x, ctx.options)


def selection(
    ctx: SelectionContext, candidates: np.ndarray | None, positions: torch.Tensor, scores: torch.Tensor
) -> Selection:
    """The Selection of picks ``positions`` and ``scores`` over the candidates, mapped back to the pool."""
    pos = positions.cpu().numpy()
    values = scores.float().cpu().numpy()
    if candidates is None:
        return Selection(picks=ctx.pool[pos].astype(np.int64), scores=values)
    full = np.full(len(ctx.pool), -np.inf, dtype=np.float32)
    full[candidates] = values
    info = {INFO_KEY: {"candidates": int(candidates.size), "pool": len(ctx.pool)}}
    return Selection(picks=ctx.pool[candidates[pos]].astype(np.int64), scores=full, info=info)
