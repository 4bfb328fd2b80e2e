"""ProbCover (Yehuda, Dekel, Hacohen & Weinshall, NeurIPS 2022): max coverage of δ-balls.

Definitions (paper §4 and the authors' ``prob_cover.py``; docs/algorithms.md), over X = labeled ∪ pool:

- *Ball*: ``B_δ(x) = {x' ∈ X : ‖x − x'‖₂ ≤ δ}`` (closed; x ∈ B_δ(x)). The graph has an edge
  x → x' for every x' ∈ B_δ(x) (symmetric, self-loops included).
- *Coverage* of a set S: ``|∪_{s∈S} B_δ(s)| / |X|``. ProbCover picks B pool points greedily:
  every point in a ball of a labeled point is covered at the start; each pick is the pool point
  whose ball holds the most uncovered points (ties: the lowest pool position), and its ball
  becomes covered. Once the most any ball holds is one uncovered point, every such candidate is
  an equally good greedy pick: each pick is then drawn uniformly among them (the selection RNG),
  not the lowest position, which would make the rest of the batch the data set's first rows in
  file order (on a class-sorted folder: one class). When no pool point's ball holds an uncovered
  point (full coverage), the rest of the batch is drawn uniformly from the unpicked pool (the
  selection RNG), as the paper does.
- *δ by the purity rule* (``delta=0``, the default): k-means (scikit-learn, ``n_init=1``, seeded
  from the selection RNG) into as many clusters as the data set has classes; a ball is *pure*
  when every point in it has its centre's cluster label; ``purity(δ)`` is the fraction of points
  of X whose ball is pure. Purity only falls as δ grows, and x's ball is pure exactly while δ is
  below ``r(x)``, the distance from x to its nearest point of another cluster. δ is the largest
  value among 0 and the radii ``r(x)`` at which ``purity(δ) ≥ alpha`` (paper: α = 0.95).
  ``delta > 0`` fixes δ instead.

Scores (``scores.npy``): each pool point's ball size among the uncovered points before the first pick.
``Selection.info`` (the round's ``selector_info``): δ and how it was chosen, the mean ball size, the
share of balls that hold only their centre, the coverage before and after the batch, and how many
picks covered two or more new points, exactly one, or none (after full coverage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

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
from svpkit.selectors.typiclust import check_cold_start, kmeans_labels


def impurity_radii(points: torch.Tensor, clusters: np.ndarray, chunk: int = 512) -> np.ndarray:
    """``r(x)``: the Euclidean distance from each row to its nearest row of another cluster (+∞ if none)."""
    out = np.empty(points.shape[0], dtype=np.float64)
    for i in range(0, points.shape[0], chunk):
        d = sq_distances(points[i : i + chunk], points)
        d[clusters[i : i + chunk, None] == clusters[None, :]] = np.inf
        out[i : i + chunk] = np.sqrt(d.min(axis=1))
    return out


def purity_delta(radii: np.ndarray, alpha: float) -> float:
    """The largest δ among 0 and the radii with ``purity(δ) = mean(radii > δ) ≥ alpha``."""
    candidates = np.unique(np.concatenate([[0.0], radii[np.isfinite(radii)]]))
    purity = np.array([(radii > c).mean() for c in candidates]) if radii.size else np.ones(1)
    ok = candidates[purity >= alpha]
    return float(ok.max()) if ok.size else 0.0


@dataclass
class Balls:
    """The δ-ball graph as CSR: the members of row i's ball are ``members[start[i]:start[i+1]]``."""

    start: np.ndarray
    members: np.ndarray

    @classmethod
    def build(cls, points: torch.Tensor, delta: float, chunk: int = 512) -> Balls:
        rows: list[np.ndarray] = []
        limit = delta * delta
        for i in range(0, points.shape[0], chunk):
            inside = sq_distances(points[i : i + chunk], points) <= limit
            rows.extend(np.flatnonzero(r) for r in inside)
        sizes = np.array([r.size for r in rows], dtype=np.int64)
        start = np.concatenate([[0], np.cumsum(sizes)])
        members = np.concatenate(rows) if rows else np.empty(0, dtype=np.int64)
        return cls(start, members.astype(np.int64))

    def ball(self, i: int) -> np.ndarray:
        return self.members[self.start[i] : self.start[i + 1]]

    def members_of(self, rows: np.ndarray) -> np.ndarray:
        """The members of the balls of ``rows``, concatenated (with repeats), without a Python loop."""
        starts, ends = self.start[rows], self.start[np.asarray(rows) + 1]
        sizes = ends - starts
        if not sizes.sum():
            return np.empty(0, dtype=np.int64)
        offsets = np.repeat(starts - np.concatenate([[0], np.cumsum(sizes)[:-1]]), sizes)
        return self.members[np.arange(int(sizes.sum())) + offsets]


class Cover(NamedTuple):
    """What :func:`probcover_picks` chose: the picked rows in pick order, each point's uncovered ball
    size before the first pick, each pick's number of newly covered points, the covered share of
    the points before and after the picks."""

    picks: np.ndarray
    initial: np.ndarray
    gains: np.ndarray
    coverage: tuple[float, float]


def probcover_picks(balls: Balls, labeled_mask: np.ndarray, budget: int, rng: np.random.Generator) -> Cover:
    """Greedy max coverage (see the module doc)."""
    n = labeled_mask.size
    candidate = ~np.asarray(labeled_mask, dtype=bool)
    if budget > int(candidate.sum()):
        raise ConfigError(f"probcover cannot pick {budget} points from a pool of {int(candidate.sum())}")
    covered = np.zeros(n, dtype=bool)
    for i in np.flatnonzero(labeled_mask):
        covered[balls.ball(int(i))] = True
    before = float(covered.mean()) if n else 1.0
    # The graph is symmetric: a point's uncovered-degree is the number of uncovered points in its ball.
    degree = np.bincount(balls.members_of(np.flatnonzero(~covered)), minlength=n).astype(np.int64)
    initial = degree.copy()
    picks: list[int] = []
    gains: list[int] = []
    while len(picks) < budget:
        masked = np.where(candidate, degree, -1)
        best = int(np.argmax(masked))
        if masked[best] <= 0:
            rest = np.flatnonzero(candidate)
            extra = rng.choice(rest, size=budget - len(picks), replace=False)
            picks.extend(int(e) for e in extra)
            gains.extend([0] * extra.size)
            break
        if masked[best] == 1:  # every candidate of gain 1 is as good: not the lowest position, a draw
            best = int(rng.choice(np.flatnonzero(masked == 1)))
        picks.append(best)
        candidate[best] = False
        newly = balls.ball(best)[~covered[balls.ball(best)]]
        gains.append(int(newly.size))
        covered[newly] = True
        # each y in newly is covered now: every ball holding y (= every member of y's ball) loses one
        degree -= np.bincount(balls.members_of(newly), minlength=n)
    after = float(covered.mean()) if n else 1.0
    return Cover(np.asarray(picks, dtype=np.int64), initial, np.asarray(gains, dtype=np.int64), (before, after))


def cover_info(delta: float, rule: str, balls: Balls, cover: Cover) -> dict[str, object]:
    """``Selection.info`` of a ProbCover round (see the module doc)."""
    sizes = np.diff(balls.start)
    return {
        "delta": round(delta, 6),
        "delta_rule": rule,
        "mean_ball_size": round(float(sizes.mean()), 3) if sizes.size else 0.0,
        "singleton_balls": round(float((sizes == 1).mean()), 4) if sizes.size else 0.0,
        "coverage_before": round(cover.coverage[0], 4),
        "coverage_after": round(cover.coverage[1], 4),
        "picks_covering_2_or_more": int((cover.gains >= 2).sum()),
        "picks_covering_1": int((cover.gains == 1).sum()),
        "picks_after_full_coverage": int((cover.gains == 0).sum()),
    }


def select_probcover(ctx: SelectionContext, k: int) -> Selection:
    """ProbCover over labeled ∪ pool in the representation ``embedding`` names (see the module doc)."""
    points, labeled_mask = labeled_then_pool(ctx, "probcover")
    options = resolved_options(ctx.options, OPTIONS)
    delta, rule = float(options["delta"]), "fixed"
    if delta <= 0:
        clusters = kmeans_labels(points, int(options["classes"]), int(ctx.rng.integers(2**31 - 1)))
        delta, rule = purity_delta(impurity_radii(points, clusters), float(options["alpha"])), "purity"
    balls = Balls.build(points, delta)
    cover = probcover_picks(balls, labeled_mask, k, ctx.rng)
    selection = pool_selection(ctx, cover.picks, cover.initial)
    selection.info = cover_info(delta, rule, balls, cover)
    return selection


OPTIONS = (
    EMBEDDING_OPTION,
    PCA_OPTION,
    ModelOption("delta", float, 0.0, "ball radius δ (0: the purity rule picks it)", minimum=0.0),
    ModelOption("alpha", float, 0.95, "purity rule: the largest δ whose balls are pure for this fraction", minimum=0.0),
    ModelOption("classes", int, 10, "purity rule: k-means clusters (the number of classes)", minimum=1),
)
NAMES = frozenset(o.name for o in OPTIONS)

SPECS = [
    SelectorSpec(
        "probcover",
        select_probcover,
        frozenset({"embeddings"}),
        "greedy max coverage of delta-balls, delta by the purity rule (cold start, Yehuda et al. 2022)",
        options=OPTIONS,
        check=check_cold_start,
        model_free=uses_inputs,
    )
]
