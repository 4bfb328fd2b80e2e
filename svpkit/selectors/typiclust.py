"""TypiClust (Hacohen, Dekel & Weinshall, ICML 2022): typical examples of uncovered clusters.

Definitions (paper §3–4 and the authors' ``typiclust.py``; docs/algorithms.md):

- *Typicality* of a point x among a set S: the inverse mean Euclidean distance to its K nearest
  neighbours in S (x itself left out), ``Typ(x) = (1/K · Σ_{x' ∈ KNN_S(x)} ‖x − x'‖₂)⁻¹``, with
  ``K = min(k_nn, ⌊|S| / 2⌋)`` as the authors' code does for small clusters (K = 0: every point
  has typicality 0). Where the mean distance is 0 the typicality is +∞.
- *Clustering*: k-means (scikit-learn, k-means++ initialisation, ``n_init=1``, seeded from the
  selection RNG) of labeled ∪ pool into ``min(|L| + B, max_clusters)`` clusters.
- *Selection*: clusters of at most ``min_cluster_size`` points are dropped; the rest are ordered
  by their number of labeled points ascending, then by size descending (ties: the lower cluster
  id). Pick ``i`` (i = 0 … B−1) takes the cluster at position ``i mod #clusters`` of that order
  and the unlabeled, not yet picked point of highest typicality among that cluster's unlabeled,
  not yet picked points (ties: the lowest pool position). Picked points leave the candidate set.
  A cluster without candidates left is skipped (the next one in the cyclic order is taken); when
  only dropped clusters have candidates left, the order is rebuilt over every cluster.

The authors use squared distances (faiss ``IndexFlatL2``) in the typicality; svpkit uses the
paper's Euclidean distance (the order of typicalities can differ). Scores (``scores.npy``): each
pool point's typicality in its cluster among the cluster's pool points before any pick.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from svpkit.errors import ConfigError
from svpkit.models.options import ModelOption
from svpkit.selectors.base import Selection, SelectionContext, SelectorSpec, SelectorUse
from svpkit.selectors.embedding import (
    EMBEDDING_OPTION,
    PCA_OPTION,
    labeled_then_pool,
    sq_distances,
    uses_inputs,
)


def typicality(points: torch.Tensor, k_nn: int) -> np.ndarray:
    """Inverse mean Euclidean distance of each row to its ``min(k_nn, ⌊n/2⌋)`` nearest other rows (float64)."""
    n = points.shape[0]
    k = min(k_nn, n // 2)
    if k == 0:
        return np.zeros(n, dtype=np.float64)
    d = sq_distances(points, points)
    np.fill_diagonal(d, np.inf)
    nearest = np.sqrt(np.partition(d, k - 1, axis=1)[:, :k])
    with np.errstate(divide="ignore"):
        return 1.0 / nearest.mean(axis=1)


def cluster_order(clusters: np.ndarray, labeled_mask: np.ndarray, min_cluster_size: int) -> list[int]:
    """Cluster ids by labeled count ascending, size descending, id ascending (sizes > ``min_cluster_size``)."""
    ids, sizes = np.unique(clusters, return_counts=True)
    labeled_counts = np.array([int(labeled_mask[clusters == c].sum()) for c in ids])
    keep = sizes > min_cluster_size
    order = np.lexsort((ids[keep], -sizes[keep], labeled_counts[keep]))
    return [int(c) for c in ids[keep][order]]


def typiclust_picks(
    points: torch.Tensor,
    labeled_mask: np.ndarray,
    clusters: np.ndarray,
    budget: int,
    k_nn: int = 20,
    min_cluster_size: int = 5,
) -> np.ndarray:
    """Positions (rows of ``points``, never labeled ones) of the ``budget`` TypiClust picks in pick order.

    ``clusters`` holds each row's cluster id; ``labeled_mask`` marks the labeled rows.
    """
    candidate = ~np.asarray(labeled_mask, dtype=bool)
    if budget > int(candidate.sum()):
        raise ConfigError(f"typiclust cannot pick {budget} points from a pool of {int(candidate.sum())}")
    order = cluster_order(clusters, labeled_mask, min_cluster_size)
    remaining = np.bincount(clusters[candidate], minlength=int(clusters.max()) + 1)
    picks: list[int] = []
    step = 0
    while len(picks) < budget:
        if not remaining[order].any():  # only the dropped small clusters have candidates left
            order, step = cluster_order(clusters, labeled_mask, -1), 0
        cluster = order[step % len(order)]
        step += 1
        if remaining[cluster] == 0:
            continue
        members = np.flatnonzero((clusters == cluster) & candidate)
        typ = typicality(points[torch.as_tensor(members)], k_nn)
        best = int(members[int(np.argmax(typ))])
        picks.append(best)
        candidate[best] = False
        remaining[cluster] -= 1
    return np.asarray(picks, dtype=np.int64)


def kmeans_labels(points: torch.Tensor, n_clusters: int, seed: int) -> np.ndarray:
    """k-means cluster ids of the rows (scikit-learn, k-means++, one initialisation)."""
    from sklearn.cluster import KMeans

    n_clusters = max(1, min(n_clusters, points.shape[0]))
    model = KMeans(n_clusters=n_clusters, n_init=1, random_state=seed)
    return np.asarray(model.fit_predict(points.double().numpy()), dtype=np.int64)


def select_typiclust(ctx: SelectionContext, k: int) -> Selection:
    """TypiClust over labeled ∪ pool in the representation ``embedding`` names (see the module doc)."""
    points, labeled_mask = labeled_then_pool(ctx, "typiclust")
    options = _options(ctx.options)
    n_clusters = min(len(ctx.labeled) + k, options["max_clusters"])
    clusters = kmeans_labels(points, n_clusters, int(ctx.rng.integers(2**31 - 1)))
    rows = typiclust_picks(points, labeled_mask, clusters, k, options["k_nn"], options["min_cluster_size"])
    positions = rows - len(ctx.labeled)
    scores = np.zeros(len(ctx.pool), dtype=np.float32)
    pool_x, pool_clusters = points[len(ctx.labeled) :], clusters[len(ctx.labeled) :]
    for c in np.unique(pool_clusters):
        members = np.flatnonzero(pool_clusters == c)
        scores[members] = typicality(pool_x[torch.as_tensor(members)], options["k_nn"])
    return Selection(picks=ctx.pool[positions].astype(np.int64), scores=scores)


def _options(given: dict[str, Any]) -> dict[str, Any]:
    defaults = {o.name: o.default for o in OPTIONS}
    return defaults | {k: v for k, v in given.items() if k in defaults}


def check_cold_start(use: SelectorUse) -> None:
    """Cold-start selectors pick batches for active learning (and labeling), not core-set rankings."""
    if use.loop == "core_set":
        raise ConfigError(
            "typiclust and probcover pick small batches for active learning (the low-budget regime); "
            "for core-set selection use a ranking selector such as forgetting_events or greedy_k_center"
        )


OPTIONS = (
    EMBEDDING_OPTION,
    PCA_OPTION,
    ModelOption("k_nn", int, 20, "neighbours in the typicality (fewer in clusters under 2·k_nn points)", minimum=1),
    ModelOption("min_cluster_size", int, 5, "clusters of at most this many points are never chosen", minimum=0),
    ModelOption("max_clusters", int, 500, "at most this many k-means clusters (|L| + B otherwise)", minimum=1),
)

SPECS = [
    SelectorSpec(
        "typiclust",
        select_typiclust,
        frozenset({"embeddings"}),
        "most typical point of the largest uncovered k-means cluster (cold start, Hacohen et al. 2022)",
        options=OPTIONS,
        check=check_cold_start,
        model_free=uses_inputs,
    )
]
