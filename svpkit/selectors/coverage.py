"""Coverage-centric core-set selection and class-balanced top-k.

:func:`ccs_select` is CCS (Zheng, Liu, Li & Prakash, ICLR 2023, Algorithm 1): prune the hardest
examples first (hard examples hurt at high pruning rates), then sample the budget across
equal-width strata of the difficulty score so the core set covers easy and hard examples alike.
Scores follow the rest of svpkit: higher = harder (EL2N, GraNd, forgetting events).

:func:`class_balanced_top_k` keeps the highest scores subject to per-class quotas, as the
class-balanced mode of score-based core sets does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch

from svpkit.selectors.base import rank_descending


class StratifiedSelection(NamedTuple):
    picks: torch.Tensor
    """Chosen positions, by stratum (lowest scores first), in random order within a stratum."""
    bin_sizes: list[int]
    """Examples per stratum after the cutoff."""
    bin_budgets: list[int]
    """Examples taken per stratum."""


def _validate_ccs(n: int, budget: int, cutoff: float, bins: int) -> None:
    if bins < 1:
        raise ValueError(f"CCS needs at least one bin (got {bins})")
    if not 0.0 <= cutoff < 1.0:
        raise ValueError(f"CCS hard cutoff must be in [0, 1) (got {cutoff})")
    remaining = n - int(cutoff * n)
    if not 0 <= budget <= remaining:
        raise ValueError(
            f"CCS budget {budget} is more than the {remaining} examples left after cutting off the hardest {cutoff:g}"
        )


def allocate_budget(sizes: Sequence[int], budget: int) -> list[int]:
    """CCS Algorithm 1's allocation: the smallest stratum left gets min(its size, ⌊budget left /
    strata left⌋), until none is left (ties: the lower stratum first). Gives out all of ``budget``
    when it is at most ``sum(sizes)``."""
    budgets = [0] * len(sizes)
    left = budget
    order = sorted(range(len(sizes)), key=lambda b: (sizes[b], b))
    for done, b in enumerate(order):
        budgets[b] = min(sizes[b], left // (len(sizes) - done))
        left -= budgets[b]
    return budgets


def ccs_select(
    scores: torch.Tensor, budget: int, cutoff: float, bins: int, generator: torch.Generator
) -> StratifiedSelection:
    """Pick ``budget`` positions by coverage-centric stratified sampling of ``scores`` (N).

    The ``int(cutoff · N)`` highest scores go first (ties: the lower position goes). The scores
    left span [min, max], cut into ``bins`` bins of equal width (a bin holds [lo, hi), the last one
    also its upper edge; all in the first bin if the scores are all equal); budgets per bin come
    from :func:`allocate_budget`; within a bin, positions are drawn uniformly without replacement
    (one uniform key per example from ``generator``, on the scores' device; the smallest keys win).
    """
    n = scores.shape[0]
    _validate_ccs(n, budget, cutoff, bins)
    s = scores.float()
    kept = rank_descending(s)[int(cutoff * n) :]
    if kept.numel() == 0:
        return StratifiedSelection(kept, [0] * bins, [0] * bins)
    ks = s[kept]
    lo, hi = ks.min(), ks.max()
    width = (hi - lo) / bins
    safe_width = torch.where(width > 0, width, torch.ones_like(width))
    stratum = ((ks - lo) / safe_width).floor_().long().clamp_(0, bins - 1)
    sizes = torch.bincount(stratum, minlength=bins)
    bin_sizes = sizes.tolist()
    budgets = allocate_budget(bin_sizes, budget)
    keys = torch.rand(kept.shape[0], generator=generator, device=s.device)
    by_key = torch.argsort(keys)
    grouped = by_key[torch.sort(stratum[by_key], stable=True).indices]  # by stratum, then key
    starts = torch.cumsum(sizes, 0) - sizes
    rank_in_bin = torch.arange(kept.shape[0], device=s.device) - starts[stratum[grouped]]
    take = rank_in_bin < torch.tensor(budgets, device=s.device)[stratum[grouped]]
    return StratifiedSelection(kept[grouped[take]], bin_sizes, budgets)


class QuotaSelection(NamedTuple):
    picks: torch.Tensor
    """Chosen positions, highest score first (ties: the lower position first)."""
    quotas: list[int]
    """Examples wanted per class (largest-remainder rounding of k × proportions)."""
    filled: torch.Tensor
    """The picks beyond their class's quota, made up for classes short of candidates (score order)."""


def class_quotas(proportions: Sequence[float], k: int) -> list[int]:
    """Largest-remainder rounding of ``k`` × proportions (normalised to sum 1; ties: lower class)."""
    if any(p < 0 for p in proportions) or sum(proportions) <= 0:
        raise ValueError(f"class proportions must be non-negative with a positive sum (got {list(proportions)})")
    total = float(sum(proportions))
    exact = [k * p / total for p in proportions]
    quotas = [int(e) for e in exact]
    by_remainder = sorted(range(len(exact)), key=lambda c: (-(exact[c] - quotas[c]), c))
    for c in by_remainder[: k - sum(quotas)]:
        quotas[c] += 1
    return quotas


def class_balanced_top_k(
    scores: torch.Tensor, classes: torch.Tensor, k: int, proportions: Sequence[float]
) -> QuotaSelection:
    """The top ``k`` of ``scores`` (N) under class quotas for ``classes`` (N ints in [0, C)).

    ``proportions`` (C values) give the quotas (:func:`class_quotas`). Each class keeps its
    ``quotas[c]`` best scores; a class with fewer candidates gives all it has, and the shortfall
    goes to the best remaining scores of the other classes (``filled``). Ties: the lower position.
    """
    n = scores.shape[0]
    if not 0 <= k <= n:
        raise ValueError(f"cannot pick {k} examples from {n}")
    quotas = class_quotas(proportions, k)
    device = scores.device
    order = rank_descending(scores.float())
    cls = classes.to(device, torch.long)[order]
    if cls.numel() and not 0 <= int(cls.min()) <= int(cls.max()) < len(quotas):
        raise ValueError(f"classes must be in [0, {len(quotas)}) for {len(quotas)} proportions")
    in_quota = within_quotas(cls, quotas)
    taken = int(in_quota.sum())
    # at most ``taken`` examples in quota come before the (k − taken)-th one outside: the first k hold the fill
    fill = (~in_quota[:k]).nonzero().squeeze(1)[: k - taken]
    chosen = in_quota.clone()
    chosen[fill] = True
    return QuotaSelection(order[chosen], quotas, order[fill])


QUOTA_CHUNK = 65_536
"""Examples ranked within their class at a time (:func:`within_quotas`): the transients of a pool's
ranks are a chunk's, not N int64 arrays (at 1.28M examples, 80 MB of them)."""


def within_quotas(cls: torch.Tensor, quotas: Sequence[int], chunk: int | None = None) -> torch.Tensor:
    """Which of the examples of classes ``cls`` (in score order, best first) are among the best
    ``quotas[c]`` of their class ``c`` (a bool mask aligned with ``cls``): chunk by chunk in score
    order, an example's rank in its class is its rank within the chunk plus its class's count before it."""
    n, device, chunk = cls.shape[0], cls.device, chunk or QUOTA_CHUNK
    limit = torch.tensor(list(quotas), device=device)
    before = torch.zeros(len(quotas), dtype=torch.long, device=device)
    out = torch.empty(n, dtype=torch.bool, device=device)
    for start in range(0, n, chunk):
        part = cls[start : start + chunk].long()
        by_class = torch.sort(part, stable=True).indices  # by class, then score rank
        sizes = torch.bincount(part, minlength=len(quotas))
        rank = torch.empty_like(part)
        rank[by_class] = torch.arange(len(part), device=device) - (torch.cumsum(sizes, 0) - sizes)[part[by_class]]
        out[start : start + chunk] = rank + before[part] < limit[part]
        before += sizes
    return out
