"""MaxHerding (Bae, Noh & Sutherland, ECCV 2024): greedy maximum of the generalised (kernel) coverage.

Definitions (paper §3, Algorithm 1; docs/algorithms.md), over X = labeled ∪ pool in the
representation the option ``embedding`` names:

- Each point is scaled to unit length first (``normalize=true``, the default, as scikit-activeml's
  ``MaxHerding``); the kernel is Gaussian, ``k(x, x') = exp(−γ ‖x − x'‖²)`` with ``γ = gamma``, or
  ``1 / d`` for ``gamma=0`` (the default: scikit-learn's ``rbf`` default, which scikit-activeml
  uses; d = the representation's width).
- *Generalised coverage* of a set S: ``C(S) = (1/|X|) Σ_{x ∈ X} max_{s ∈ S} k(x, s)`` (0 for S = ∅).
  ProbCover's coverage is the special case of the indicator kernel ``1[‖x − x'‖ ≤ δ]``.
- *Selection*: starting from S = L, each of the B picks is the pool point c with the largest gain
  ``C(S ∪ {c}) − C(S) = (1/|X|) Σ_x max(k(x, c) − m(x), 0)``, ``m(x) = max_{s∈S} k(x, s)``
  (ties: the lowest pool position; scikit-activeml breaks ties at random); c joins S.

C is monotone and submodular, so gains only shrink as S grows: svpkit evaluates them lazily (a
heap of stale gains, each an upper bound; the top one is recomputed until it stays on top), which
gives the same picks as recomputing every gain for every pick, at O(N·d) memory (no N × N kernel).
A labeled point x has m(x) = k(x, x) = 1, so it adds nothing to any gain: summing over X or over
the pool alone (as scikit-activeml does) ranks the candidates the same.

Scores (``scores.npy``): each pool point's gain before the first pick.
"""

from __future__ import annotations

import heapq

import numpy as np
import torch

from svpkit.errors import ConfigError
from svpkit.models.options import ModelOption
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec
from svpkit.selectors.embedding import (
    EMBEDDING_OPTION,
    PCA_OPTION,
    labeled_then_pool,
    pool_selection,
    resolved_options,
    sq_distances,
    uses_inputs,
)
from svpkit.selectors.typiclust import check_cold_start
from svpkit.selectors.uncertainty import margin_scores

DENSE_LIMIT = 16_384
"""Pools up to this size keep the whole kernel matrix (float32: 1 GiB at the limit)."""


class Kernel:
    """Gaussian kernel rows against all of X (unit-length rows when ``normalize``).

    Up to ``dense_limit`` points the whole N × N matrix is computed once (float32, chunked) and rows
    are looked up; above it each row is computed when asked for (O(N·d) memory).
    """

    def __init__(self, points: torch.Tensor, gamma: float, normalize: bool, dense_limit: int = DENSE_LIMIT) -> None:
        x = points.double()
        if normalize:
            x = x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        self.x = x
        self.gamma = gamma if gamma > 0 else 1.0 / max(int(x.shape[1]), 1)
        self.dense: np.ndarray | None = None
        n = int(x.shape[0])
        if n <= dense_limit:
            self.dense = np.empty((n, n), dtype=np.float32)
            for i in range(0, n, 1024):
                self.dense[i : i + 1024] = self._compute(np.arange(i, min(i + 1024, n)))

    def _compute(self, idx: np.ndarray) -> np.ndarray:
        d = sq_distances(self.x[torch.as_tensor(np.asarray(idx, dtype=np.int64))], self.x)
        return np.exp(-self.gamma * d)

    def rows(self, idx: np.ndarray) -> np.ndarray:
        """``k(x_i, x_j)`` for i in ``idx`` (rows) and every j (columns), float64."""
        if self.dense is not None:
            return self.dense[np.asarray(idx, dtype=np.int64)].astype(np.float64)
        return self._compute(idx)


def maxherding_picks(
    kernel: Kernel, labeled_mask: np.ndarray, budget: int, chunk: int = 512, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Lazy greedy MaxHerding (module doc): (picked rows in pick order, every row's gain before the first pick).

    ``weights`` (one non-negative value per row; None: all 1) weigh each point's coverage: the
    uncertainty coverage of Uncertainty Herding (:func:`select_uncertainty_herding`)."""
    labeled_mask = np.asarray(labeled_mask, dtype=bool)
    n = labeled_mask.size
    candidates = np.flatnonzero(~labeled_mask)
    if budget > candidates.size:
        raise ConfigError(f"maxherding cannot pick {budget} points from a pool of {candidates.size}")
    covered = np.zeros(n, dtype=np.float64)  # m(x): the best kernel value to S so far
    for i in range(0, int(labeled_mask.sum()), chunk):
        block = np.flatnonzero(labeled_mask)[i : i + chunk]
        covered = np.maximum(covered, kernel.rows(block).max(axis=0))
    gains = np.zeros(n, dtype=np.float64)
    for i in range(0, candidates.size, chunk):
        block = candidates[i : i + chunk]
        gains[block] = _gain(kernel.rows(block) - covered, weights) / n
    initial = gains.copy()
    heap = [(-float(gains[c]), int(c)) for c in candidates]
    heapq.heapify(heap)
    picks: list[int] = []
    while len(picks) < budget:
        _, row = heapq.heappop(heap)
        k_row = kernel.rows(np.array([row]))[0]
        fresh = (-float(_gain(k_row[None, :] - covered, weights)[0] / n), row)
        if heap and fresh > heap[0]:  # another candidate's bound is higher: look again later
            heapq.heappush(heap, fresh)
            continue
        picks.append(row)
        covered = np.maximum(covered, k_row)
    return np.asarray(picks, dtype=np.int64), initial


def _gain(excess: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """Σ_x w(x)·max(k(x, c) − m(x), 0) per row c of ``excess`` (w = 1: a plain sum, MaxHerding's)."""
    positive = np.maximum(excess, 0.0)
    return positive.sum(axis=1) if weights is None else positive @ weights


def select_maxherding(ctx: SelectionContext, k: int) -> Selection:
    """MaxHerding over labeled ∪ pool in the representation ``embedding`` names (see the module doc)."""
    points, labeled_mask = labeled_then_pool(ctx, "maxherding")
    options = resolved_options(ctx.options, OPTIONS)
    kernel = Kernel(points, float(options["gamma"]), bool(options["normalize"]))
    rows, initial = maxherding_picks(kernel, labeled_mask, k)
    return pool_selection(ctx, rows, initial)


def select_uncertainty_herding(ctx: SelectionContext, k: int) -> Selection:
    """Uncertainty Herding (Bae, Oliveira & Sutherland, ICLR 2025): MaxHerding whose coverage weighs
    each pool point by the selector model's margin uncertainty ``1 − (p₁ − p₂)`` (labeled points
    are covered already: they add nothing whatever their weight)."""
    if ctx.probabilities is None or ctx.candidates is not None:
        raise RuntimeError("uncertainty herding needs the selector model's probabilities of the whole pool")
    points, labeled_mask = labeled_then_pool(ctx, "uherding")
    options = resolved_options(ctx.options, OPTIONS)
    kernel = Kernel(points, float(options["gamma"]), bool(options["normalize"]))
    weights = np.ones(labeled_mask.size, dtype=np.float64)
    weights[len(ctx.labeled) :] = margin_scores(ctx.probabilities.double()).cpu().numpy()
    rows, initial = maxherding_picks(kernel, labeled_mask, k, weights=weights)
    return pool_selection(ctx, rows, initial)


OPTIONS = (
    EMBEDDING_OPTION,
    PCA_OPTION,
    ModelOption("gamma", float, 0.0, "Gaussian kernel exp(-gamma·d²) (0: 1 / the representation's width)", minimum=0.0),
    ModelOption("normalize", bool, True, "scale every point to unit length before the kernel"),
)
NAMES = frozenset(o.name for o in OPTIONS)

SPECS = [
    SelectorSpec(
        "maxherding",
        select_maxherding,
        frozenset({"embeddings"}),
        "greedy max of the Gaussian-kernel (generalised) coverage (cold start, Bae et al. 2024)",
        options=OPTIONS,
        check=check_cold_start,
        model_free=uses_inputs,
    )
]
