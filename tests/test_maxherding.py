"""MaxHerding (issue 35) against a brute-force greedy on small generated data, its ties, the
selector through the registry (and as the initial selector), and ``auto`` starting with it."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from svpkit.data.digits import load_digits
from svpkit.loops.cold_start import initial_set
from svpkit.plugins import get_plugins
from svpkit.selectors.base import SelectionContext
from svpkit.selectors.maxherding import Kernel, maxherding_picks


def ref_maxherding(
    points: np.ndarray,
    labeled: set[int],
    budget: int,
    gamma: float,
    normalize: bool,
    weights: list[float] | None = None,
) -> list[int]:
    """Algorithm 1 written plainly: the full kernel, every gain recomputed for every pick, first maximum
    (``weights``: each point's coverage weighted, Uncertainty Herding's uncertainty coverage)."""
    x = [p / np.linalg.norm(p) if normalize else p for p in points.astype(np.float64)]
    g = gamma if gamma > 0 else 1.0 / points.shape[1]
    n = len(x)
    k = [[math.exp(-g * math.dist(a, b) ** 2) for b in x] for a in x]
    chosen = set(labeled)
    picks: list[int] = []

    w = weights or [1.0] * n

    def coverage(s: set[int]) -> float:
        return sum(w[i] * max((k[j][i] for j in s), default=0.0) for i in range(n)) / n

    for _ in range(budget):
        base = coverage(chosen)
        gains = [(coverage(chosen | {c}) - base, -c) for c in range(n) if c not in chosen]
        best = max(gains, key=lambda t: (round(t[0], 12), t[1]))
        picks.append(-best[1])
        chosen.add(-best[1])
    return picks


@pytest.mark.parametrize(
    ("seed", "labeled_n", "gamma", "normalize"), [(0, 0, 0.0, True), (1, 4, 0.5, False), (2, 7, 2.0, True)]
)
def test_maxherding_matches_brute_force(seed: int, labeled_n: int, gamma: float, normalize: bool) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=3.0, size=(4, 3))
    points = np.concatenate([c + rng.normal(scale=0.5, size=(10, 3)) for c in centres])
    labeled = set(rng.choice(len(points), size=labeled_n, replace=False).tolist())
    mask = np.zeros(len(points), dtype=bool)
    mask[list(labeled)] = True
    picks, initial = maxherding_picks(Kernel(torch.tensor(points), gamma, normalize), mask, 6)
    assert picks.tolist() == ref_maxherding(points, labeled, 6, gamma, normalize)
    assert initial[mask].tolist() == [0.0] * labeled_n  # a labeled point is never a candidate
    assert (initial[~mask] > 0).all()


def test_uncertainty_herding_matches_brute_force_and_follows_the_weights() -> None:
    """Weighted coverage (Uncertainty Herding): the lazy greedy equals the plain one, and a blob whose
    points weigh nothing gets no pick while MaxHerding gives it one."""
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=3.0, size=(4, 3))
    points = np.concatenate([c + rng.normal(scale=0.5, size=(10, 3)) for c in centres])
    weights = rng.uniform(0.0, 1.0, size=len(points))
    mask = np.zeros(len(points), dtype=bool)
    mask[[0, 11]] = True
    kernel = Kernel(torch.tensor(points), 0.5, False)
    picks, _ = maxherding_picks(kernel, mask, 6, weights=weights)
    assert picks.tolist() == ref_maxherding(points, {0, 11}, 6, 0.5, False, weights.tolist())
    blob = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    blobs = np.concatenate([o + blob for o in np.array([[0, 0], [20, 0], [0, 20], [20, 20]], dtype=np.float64)])
    certain = np.ones(12)
    certain[3:6] = 0.0  # the second blob is predicted with certainty
    plain, _ = maxherding_picks(Kernel(torch.tensor(blobs), 1.0, False), np.zeros(12, dtype=bool), 4)
    weighted, _ = maxherding_picks(
        Kernel(torch.tensor(blobs), 1.0, False), np.zeros(12, dtype=bool), 3, weights=certain
    )
    assert sorted(int(p) // 3 for p in plain) == [0, 1, 2, 3]
    assert sorted(int(p) // 3 for p in weighted) == [0, 2, 3]


def test_maxherding_ties_go_to_the_lowest_position_and_it_picks_one_per_blob() -> None:
    """Two identical blobs: the first pick is the lower copy; four far-apart blobs get one pick each."""
    blob = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1]])
    twins = np.concatenate([blob, blob])
    picks, _ = maxherding_picks(Kernel(torch.tensor(twins), 1.0, False), np.zeros(6, dtype=bool), 1)
    assert picks.tolist() == [0]
    offsets = np.array([[0, 0], [20, 0], [0, 20], [20, 20]], dtype=np.float64)
    points = np.concatenate([o + blob for o in offsets])
    picks, _ = maxherding_picks(Kernel(torch.tensor(points), 1.0, False), np.zeros(12, dtype=bool), 4)
    assert sorted(int(p) // 3 for p in picks) == [0, 1, 2, 3]
    assert all(int(p) % 3 == 0 for p in picks)  # the blob's centre point covers it best


def test_maxherding_selector_and_initial_set_on_digits() -> None:
    data = load_digits().limited(train=400, test=50)
    spec = get_plugins().selectors.get("maxherding")
    assert not spec.trains_model({"embedding": "input"}) and spec.trains_model({"embedding": "model"})
    first = initial_set(data, "maxherding", 20, 0)
    assert first.tolist() == initial_set(data, "maxherding", 20, 5).tolist()  # deterministic: no RNG draw
    classes = np.unique(data.train.y.numpy()[first]).size
    rng = np.random.default_rng(0)
    random_classes = np.mean(
        [np.unique(data.train.y.numpy()[rng.choice(len(data.train), 20, replace=False)]).size for _ in range(20)]
    )
    assert classes >= random_classes
    x = data.train.x.reshape(len(data.train), -1).float()
    pool = np.setdiff1d(np.arange(len(data.train)), first)
    ctx = SelectionContext(
        pool,
        first,
        np.random.default_rng(0),
        options={"embedding": "model", "gamma": 0.0, "normalize": True},
        pool_embeddings=x[pool],
        labeled_embeddings=x[first],
    )
    selection = spec.select(ctx, 10)
    assert np.intersect1d(selection.picks, first).size == 0 and np.unique(selection.picks).size == 10
    assert selection.scores.shape == (pool.size,)


def test_auto_starts_with_maxherding_when_asked() -> None:
    data = load_digits().limited(train=300, test=50)
    x = data.train.x.reshape(len(data.train), -1).float()
    labeled = np.arange(20)
    pool = np.arange(20, len(data.train))
    probs = torch.full((pool.size, 10), 0.1)

    def ctx(name: str, options: dict[str, object]) -> SelectionContext:
        return SelectionContext(
            pool,
            labeled,
            np.random.default_rng(0),
            probabilities=probs,
            options=options,
            inputs=lambda idx: x[torch.as_tensor(idx)],
        )

    plugins = get_plugins().selectors
    auto = plugins.get("auto").select(ctx("auto", {"cold_start": "maxherding"}), 8)
    direct = plugins.get("maxherding").select(ctx("maxherding", {"embedding": "input"}), 8)
    assert auto.picks.tolist() == direct.picks.tolist()
    assert auto.info["selector"] == "maxherding" and auto.info["phase"] == "cold start"


def test_auto_hands_over_to_uncertainty_herding() -> None:
    """``then=uherding``: after the hand-over the picks are the margin-weighted MaxHerding's, and
    they stay away from what the model is sure of."""
    from svpkit.selectors.maxherding import select_uncertainty_herding

    data = load_digits().limited(train=300, test=50)
    x = data.train.x.reshape(len(data.train), -1).float()
    labeled, pool = np.arange(60), np.arange(60, len(data.train))  # 6 per class: past switch_per_class 5
    sure = torch.as_tensor(data.train.y.numpy()[pool] < 5)  # the model is certain of classes 0-4
    probs = torch.where(sure[:, None], torch.eye(10)[0].expand(pool.size, 10), torch.full((pool.size, 10), 0.1))

    def ctx(options: dict[str, object]) -> SelectionContext:
        context = SelectionContext(
            pool, labeled, np.random.default_rng(0), probabilities=probs, options=options, inputs=lambda i: x[i]
        )
        context.stop_kappas = [0.95]
        return context

    auto = get_plugins().selectors.get("auto").select(ctx({"then": "uherding"}), 10)
    direct = select_uncertainty_herding(ctx({"embedding": "input"}), 10)
    assert auto.info["selector"] == "uherding" and auto.info["phase"] == "hand-over"
    assert auto.picks.tolist() == direct.picks.tolist()
    assert not sure[np.searchsorted(pool, auto.picks)].any()
    plain = get_plugins().selectors.get("maxherding").select(ctx({"embedding": "input"}), 10)
    assert sure[np.searchsorted(pool, plain.picks)].any()  # unweighted, it does pick there


def test_pca_keeps_the_distances_of_low_rank_data_and_the_initial_selector_takes_it() -> None:
    """``pca=N`` (the cold-start selectors' representation): data of rank 3 in 12 dimensions keeps
    every pairwise distance with 3 components, so the picks are those without it; the initial
    selector picks in the run selector's representation."""
    from svpkit.loops.cold_start import initial_options
    from svpkit.selectors.embedding import features, principal_components, sq_distances

    rng = np.random.default_rng(0)
    points = torch.tensor(rng.normal(size=(80, 3)) @ rng.normal(size=(3, 12)), dtype=torch.float32)
    projected = principal_components(points, 3)
    assert projected.shape == (80, 3)
    np.testing.assert_allclose(sq_distances(projected, projected), sq_distances(points, points), atol=1e-3)
    labeled, pool = np.arange(5), np.arange(5, 80)

    def ctx(options: dict[str, object]) -> SelectionContext:
        return SelectionContext(pool, labeled, np.random.default_rng(1), options=options, inputs=lambda i: points[i])

    pool_x, labeled_x = features(ctx({"embedding": "input", "pca": 3}), "x")
    assert pool_x.shape == (75, 3) and labeled_x.shape == (5, 3)
    maxherding = get_plugins().selectors.get("maxherding")
    with_pca = maxherding.select(ctx({"embedding": "input", "pca": 3, "gamma": 0.1, "normalize": False}), 6)
    without = maxherding.select(ctx({"embedding": "input", "pca": 0, "gamma": 0.1, "normalize": False}), 6)
    assert with_pca.picks.tolist() == without.picks.tolist()
    assert initial_options(get_plugins().selectors.get("typiclust"), {"pca": 64, "k_nn": 3})["pca"] == 64
    assert initial_options(get_plugins().selectors.get("typiclust"), {"pca": 64, "k_nn": 3})["k_nn"] == 20
