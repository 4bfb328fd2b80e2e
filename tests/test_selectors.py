"""Selectors against hand-made probabilities and brute-force references."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svpkit.errors import ConfigError
from svpkit.plugins import get_plugins
from svpkit.selectors.base import SelectionContext
from svpkit.selectors.k_center import greedy_k_center, min_sq_distances
from svpkit.selectors.uncertainty import entropy_scores, least_confidence_scores, margin_scores

PROBS = torch.tensor(
    [
        [0.90, 0.05, 0.05],  # confident
        [0.40, 0.35, 0.25],  # least confident, small margin
        [0.50, 0.50, 0.00],  # margin 0, a zero probability
        [1.00, 0.00, 0.00],  # certain: entropy 0 with 0·log 0 = 0
        [0.40, 0.30, 0.30],  # same max as row 1 (tie for least confidence)
    ]
)
POOL = np.array([10, 11, 12, 13, 14])


def ctx(probs: torch.Tensor = PROBS) -> SelectionContext:
    return SelectionContext(pool=POOL, labeled=np.array([0, 1]), rng=np.random.default_rng(0), probabilities=probs)


def select(name: str, k: int, c: SelectionContext | None = None) -> list[int]:
    return get_plugins().selectors.get(name).select(c or ctx(), k).picks.tolist()


def test_least_confidence_ranks_by_ascending_max_probability_with_stable_ties() -> None:
    assert least_confidence_scores(PROBS).tolist() == pytest.approx([0.1, 0.6, 0.5, 0.0, 0.6])
    # rows 1 and 4 tie at max 0.40: the lower training index (11) comes first
    assert select("least_confidence", 5) == [11, 14, 12, 10, 13]


def test_entropy_uses_zero_log_zero_and_ranks_descending() -> None:
    h = entropy_scores(PROBS)
    assert not torch.isnan(h).any()
    expected = [-sum(p * math.log(p) for p in row if p > 0) for row in PROBS.tolist()]
    assert h.tolist() == pytest.approx(expected, abs=1e-6)
    assert h[3].item() == 0.0
    assert select("entropy", 3) == [14, 11, 12]


def test_margin_ranks_smallest_gap_first() -> None:
    assert margin_scores(PROBS).tolist() == pytest.approx([0.15, 0.95, 1.0, 0.0, 0.9])
    assert select("margin", 5) == [12, 11, 14, 10, 13]


def test_random_selector_is_seeded_and_disjoint() -> None:
    a = select("random", 3, ctx())
    b = select("random", 3, ctx())
    assert a == b and len(set(a)) == 3 and set(a) <= set(POOL.tolist())


def brute_force_k_center(pool: np.ndarray, centers: np.ndarray, k: int) -> list[int]:
    """Paper Algorithm 1 with a full distance matrix, argmax ties to the lowest position."""
    dist = np.sqrt(((pool[:, None, :] - centers[None, :, :]) ** 2).sum(-1)).min(axis=1)
    picks: list[int] = []
    for _ in range(k):
        masked = dist.copy()
        masked[picks] = -1
        i = int(np.argmax(masked))
        picks.append(i)
        dist = np.minimum(dist, np.sqrt(((pool - pool[i]) ** 2).sum(-1)))
    return picks


@pytest.mark.parametrize("seed,n,m,d,k", [(0, 200, 5, 8, 30), (1, 57, 1, 3, 56), (2, 500, 40, 16, 100)])
def test_greedy_k_center_matches_brute_force(seed: int, n: int, m: int, d: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    pool = rng.normal(size=(n, d)).astype(np.float64)
    centers = rng.normal(size=(m, d)).astype(np.float64)
    picks, initial = greedy_k_center(torch.from_numpy(pool).float(), torch.from_numpy(centers).float(), k, chunk=17)
    assert picks.tolist() == brute_force_k_center(pool.astype(np.float32), centers.astype(np.float32), k)
    expected = ((pool[:, None] - centers[None]) ** 2).sum(-1).min(1)
    assert initial.numpy() == pytest.approx(expected, rel=1e-4)


def test_min_sq_distances_chunking_does_not_change_values() -> None:
    rng = np.random.default_rng(3)
    p, c = torch.from_numpy(rng.normal(size=(300, 6))).float(), torch.from_numpy(rng.normal(size=(70, 6))).float()
    assert torch.allclose(min_sq_distances(p, c, chunk=7), min_sq_distances(p, c, chunk=4096))


def test_k_center_selector_never_picks_labeled_points() -> None:
    rng = np.random.default_rng(4)
    feats = torch.from_numpy(rng.normal(size=(50, 4))).float()
    labeled = np.array([3, 7, 9])
    pool = np.setdiff1d(np.arange(50), labeled)
    c = SelectionContext(
        pool=pool,
        labeled=labeled,
        rng=rng,
        pool_embeddings=feats[pool],
        labeled_embeddings=feats[labeled],
    )
    sel = get_plugins().selectors.get("greedy_k_center").select(c, 10)
    assert not set(sel.picks.tolist()) & set(labeled.tolist())
    assert len(set(sel.picks.tolist())) == 10
    assert sel.scores.shape == (pool.size,)


def test_k_center_requires_a_centre() -> None:
    with pytest.raises(ConfigError, match="at least one initial centre"):
        greedy_k_center(torch.zeros(5, 2), torch.zeros(0, 2), 2)
