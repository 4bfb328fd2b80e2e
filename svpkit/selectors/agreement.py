"""Does the proxy pick what the target would? Agreement of two selections over one pool.

In an active-learning round after the first, the target (trained on the same labeled set as the
proxy) scores the round's pool through the same selector, and :func:`pool_agreement` compares the
two selections:

- ``spearman``: Spearman rank correlation of the proxy's and the target's pool scores
  (:func:`scipy.stats.spearmanr`). When either side's scores are constant the correlation is
  undefined (scipy gives NaN); it is reported as :data:`CONSTANT_SCORES_SPEARMAN` (``0.0``): a
  constant scorer ranks nothing, so it carries no agreement, and the logged metric stays finite.
  Infinite scores (never-learned examples under forgetting events) keep their rank.
- ``top_k_overlap``: the fraction of the proxy's ``k`` picks that the target's own ``k`` picks
  contain.
- ``random_overlap``: ``k / |pool|``, the expected overlap of two unrelated ``k``-subsets.

**Noise.** Were the target's picks a uniform random ``k``-subset of the pool, the number of picks
shared with the proxy would be hypergeometric, ``X ~ Hypergeom(N=|pool|, K=k, n=k)``, with mean
``k²/N`` and variance ``k·(k/N)·(1−k/N)·(N−k)/(N−1)``. :func:`overlap_noise_margin` is ``z`` of its
standard deviations, as a fraction of ``k``.

**Warning rule** (:func:`proxy_warning`): a run is warned about when, in
:data:`WARNING_ROUNDS` (2) consecutive informative rounds, the top-k overlap is at most
``random_overlap + overlap_noise_margin(k, |pool|, WARNING_Z)`` with ``WARNING_Z = 2``. An
overlap at or below that bar is within the spread of random picks: a selection unrelated to the
proxy's exceeds it in only a few per cent of rounds (about 2.3 % in the normal approximation, 2–6 %
for the exact hypergeometric tail at pools of 100–5000 and k of 10–100), so a proxy that clears it
agrees beyond chance. Requiring two rounds in a row keeps one unlucky round (typically the first
after the seed set, when both models are weak) from tagging a run that otherwise agrees.
A round is *informative* when ``random_overlap + margin < 1``: otherwise (pool nearly exhausted,
``k`` close to ``|pool|``) even a perfect agreement cannot be told from random; such rounds are
skipped, neither extending nor breaking a streak.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

CONSTANT_SCORES_SPEARMAN = 0.0
WARNING_Z = 2.0
WARNING_ROUNDS = 2


def pool_agreement(
    proxy_scores: np.ndarray,
    target_scores: np.ndarray,
    proxy_picks: np.ndarray,
    target_picks: np.ndarray,
    pool_size: int,
) -> dict[str, float]:
    """``spearman``, ``top_k_overlap`` and ``random_overlap`` of one round (see the module text).

    Scores align with the pool (one per pool entry, as in ``Selection.scores``); picks are the
    training indices each side chose, ``k`` of them each (``k = len(proxy_picks)``).
    """
    proxy = np.asarray(proxy_scores, dtype=np.float64)
    target = np.asarray(target_scores, dtype=np.float64)
    if proxy.shape != (pool_size,) or target.shape != (pool_size,):
        raise ValueError(
            f"scores must have one entry per pool example ({pool_size}), got {proxy.shape} and {target.shape}"
        )
    if np.isnan(proxy).any() or np.isnan(target).any():
        raise ValueError("scores contain NaN")
    k = len(proxy_picks)
    _check_k(k, pool_size)
    if len(target_picks) != k:
        raise ValueError(f"the target picked {len(target_picks)} examples, the proxy {k}; both must pick the same k")
    if np.unique(proxy_picks).size != k or np.unique(target_picks).size != k:
        raise ValueError("picks must be distinct training indices")
    if np.unique(proxy).size < 2 or np.unique(target).size < 2:
        spearman = CONSTANT_SCORES_SPEARMAN
    else:
        spearman = float(stats.spearmanr(proxy, target).statistic)
    shared = np.intersect1d(proxy_picks, target_picks).size
    return {"spearman": spearman, "top_k_overlap": shared / k, "random_overlap": k / pool_size}


def _check_k(k: int, pool_size: int) -> None:
    if not 1 <= k <= pool_size:
        raise ValueError(f"k must be between 1 and the pool size {pool_size}, got {k}")


def overlap_noise_margin(k: int, pool_size: int, z: float = WARNING_Z) -> float:
    """``z`` standard deviations of the overlap fraction of two unrelated ``k``-subsets of the pool."""
    _check_k(k, pool_size)
    if z < 0:
        raise ValueError(f"z must not be negative, got {z}")
    if k == pool_size:
        return 0.0
    with np.errstate(divide="ignore", invalid="ignore"):  # scipy's kurtosis term for pools under 4
        variance = float(stats.hypergeom.var(pool_size, k, k))
    return z * float(np.sqrt(variance)) / k


@dataclass(frozen=True)
class RoundAgreement:
    """One round's entry of the history :func:`proxy_warning` reads."""

    round: int
    k: int
    pool_size: int
    top_k_overlap: float

    @property
    def random_overlap(self) -> float:
        return self.k / self.pool_size

    @property
    def bar(self) -> float:
        """The overlap a round must exceed to be above the noise of random picks."""
        return self.random_overlap + overlap_noise_margin(self.k, self.pool_size, WARNING_Z)


def proxy_warning(history: Sequence[RoundAgreement]) -> str | None:
    """A one-line reason when the top-k overlap stayed within noise of random (the module's rule), else None."""
    streak: list[RoundAgreement] = []
    for entry in history:
        if entry.bar >= 1.0:
            continue  # uninformative: not even a perfect agreement clears the bar
        streak = [*streak, entry] if entry.top_k_overlap <= entry.bar else []
        if len(streak) == WARNING_ROUNDS:
            rounds = " and ".join(str(e.round) for e in streak)
            seen = ", ".join(f"{e.top_k_overlap:.3f} (random {e.random_overlap:.3f}, bar {e.bar:.3f})" for e in streak)
            return (
                f"the proxy's top-k overlap with the target stayed within noise of random picks in rounds {rounds}: "
                f"{seen}; bar = k/|pool| + {WARNING_Z:g} hypergeometric standard deviations"
            )
    return None
