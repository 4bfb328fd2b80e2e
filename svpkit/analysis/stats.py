"""Statistics over seeds for ``svpkit compare``: intervals, paired differences, curve areas, verdicts.

Errors are fractions (0.123 is 12.3 %); :func:`format_cell` shows them in percent. Intervals are
Student-t intervals of the mean over seeds (:func:`scipy.stats.t`); with one seed there is no
interval, and a cell says ``n=1`` instead of a misleading ``± 0.0``. Paired differences pair runs
by seed (only seeds present on both sides), so their interval is the one of
:func:`scipy.stats.ttest_rel`. The verdict of a row (:func:`verdict`, rules in
:data:`VERDICT_RULES`) reads the intervals of the paired differences of its normalised area
under the error-vs-labeled curve (:func:`normalised_auc`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import integrate, stats

DEFAULT_CONFIDENCE = 0.95
DEFAULT_TOLERANCE = 0.01
"""How much higher a proxy's error may be than its baseline's and still match it: 1 percentage
point, a cost few would refuse for a several-fold selection speed-up, yet smaller than the usual
gap between an active-learning selector and random selection, so "matches baseline" stays a claim
with content. Paired intervals make it attainable with a handful of seeds."""

VERDICT_RULES = (
    "Verdict per row, from 95 % t-intervals of per-seed paired differences (same seeds on both sides, "
    "at least 2) of the normalised area under the error-vs-labeled curve, lower error being better, "
    "the first rule that holds: "
    "'worse than random' when the lower end of selector − random is above 0; "
    "'matches baseline (within X points)' when the upper end of proxy − baseline is at most X percentage points; "
    "'worse than baseline' when its lower end is above 0; "
    "'beats random' when the upper end of selector − random is below 0; "
    "else 'inconclusive (n seeds)'. "
    "Per budget level, the differences table reads selector − random at that level alone: "
    "'worse than random', 'beats random' or 'inconclusive'."
)
WORSE_THAN_RANDOM = "worse than random"
BEATS_RANDOM = "beats random"
MAX_SEEDS_NEEDED = 100_000
"""Above this, :func:`seeds_needed` says None (the observed mean is too close to the boundary)."""


@dataclass(frozen=True)
class Interval:
    """A mean over ``n`` values with the half-width of its t-interval (None for a single value)."""

    mean: float
    half_width: float | None
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


@dataclass(frozen=True)
class PairedDifference:
    """``a − b`` per shared seed (in ``a``'s seed order) and the interval of their mean."""

    seeds: tuple[str, ...]
    differences: tuple[float, ...]
    interval: Interval


def t_interval(values: Sequence[float], confidence: float = DEFAULT_CONFIDENCE) -> Interval:
    """Mean and t-interval half-width ``t_{(1+c)/2, n−1} · s / √n``; one value has no interval."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1, got {confidence}")
    if not values:
        raise ValueError("an interval needs at least one value")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"values must be finite numbers, got {list(values)}")
    mean = statistics.fmean(values)
    n = len(values)
    if n == 1:
        return Interval(mean, None, 1)
    quantile = float(stats.t.ppf((1 + confidence) / 2, n - 1))
    return Interval(mean, quantile * statistics.stdev(values) / math.sqrt(n), n)


def paired_differences(
    a_by_seed: Mapping[str, float], b_by_seed: Mapping[str, float], confidence: float = DEFAULT_CONFIDENCE
) -> PairedDifference | None:
    """Per-seed ``a − b`` over the seeds both sides have, with its interval; None when they share none."""
    seeds = tuple(s for s in a_by_seed if s in b_by_seed)
    if not seeds:
        return None
    diffs = tuple(a_by_seed[s] - b_by_seed[s] for s in seeds)
    return PairedDifference(seeds, diffs, t_interval(diffs, confidence))


def normalised_auc(labeled_counts: Sequence[int], errors: Sequence[float], total: int) -> float:
    """Area under error vs labeled fraction (``count / total``, trapezoid rule) over the fraction range.

    The mean height of the curve, so rows over the same levels compare directly, in error units;
    a single level gives its error.
    """
    if len(labeled_counts) != len(errors) or not errors:
        raise ValueError(f"need one error per labeled count, got {len(errors)} errors for {len(labeled_counts)} counts")
    if total <= 0 or any(not 0 <= c <= total for c in labeled_counts):
        raise ValueError(f"labeled counts must lie between 0 and the training-set size {total}")
    if len(set(labeled_counts)) != len(labeled_counts):
        raise ValueError(f"labeled counts repeat: {list(labeled_counts)}")
    points = sorted(zip(labeled_counts, errors))
    if len(points) == 1:
        return float(points[0][1])
    fractions = [c / total for c, _ in points]
    area = float(integrate.trapezoid([e for _, e in points], fractions))
    return area / (fractions[-1] - fractions[0])


def _bounds(interval: Interval | None) -> tuple[float, float] | None:
    if interval is None or interval.low is None or interval.high is None:
        return None
    return interval.low, interval.high


def verdict(vs_random: Interval | None, vs_baseline: Interval | None, tolerance: float = DEFAULT_TOLERANCE) -> str:
    """The row's verdict by :data:`VERDICT_RULES`.

    ``vs_random``: interval of the row's paired differences (selector − random) of an error
    statistic (the normalised AUC); ``vs_baseline``: the same for proxy − baseline (None for
    rows without a baseline). ``tolerance`` is in error units (0.01 = 1 percentage point).
    """
    if not 0 <= tolerance < math.inf:
        raise ValueError(f"tolerance must be a non-negative number, got {tolerance}")
    rand = _bounds(vs_random)
    if rand is not None and rand[0] > 0:
        return WORSE_THAN_RANDOM
    baseline = _bounds(vs_baseline)
    if baseline is not None and baseline[1] <= tolerance:
        points = 100 * tolerance
        return f"matches baseline (within {points:g} point{'' if points == 1 else 's'})"
    if baseline is not None and baseline[0] > 0:
        return "worse than baseline"
    if rand is not None and rand[1] < 0:
        return BEATS_RANDOM
    n = max((i.n for i in (vs_random, vs_baseline) if i is not None), default=0)
    return f"inconclusive ({n} seed{'' if n == 1 else 's'})"


def level_verdict(vs_random: Interval | None) -> str | None:
    """One budget level's selector − random interval read alone: worse than / beats random, else
    inconclusive; None without an interval (no random row, or one seed)."""
    rand = _bounds(vs_random)
    if rand is None:
        return None
    if rand[0] > 0:
        return WORSE_THAN_RANDOM
    return BEATS_RANDOM if rand[1] < 0 else "inconclusive"


def seeds_needed(differences: Sequence[float], margin: float, confidence: float = DEFAULT_CONFIDENCE) -> int | None:
    """How many seeds the observed paired spread needs for the interval to end ``margin`` from its mean.

    With ``s`` the sample standard deviation of ``differences``: the smallest ``n ≥ 2`` with
    ``t_{(1+c)/2, n−1} · s / √n < margin`` (scipy's t quantile), i.e. the seed count at which an
    interval of the same mean and spread would exclude the boundary ``margin`` away. None when it
    cannot (``margin ≤ 0``, fewer than 2 differences, or more than :data:`MAX_SEEDS_NEEDED`).
    A planning estimate: if the mean and spread stay as observed, about half of the repetitions
    with that many seeds decide (the mean itself varies from run to run).
    """
    if margin <= 0 or len(differences) < 2:
        return None
    sd = statistics.stdev(differences)
    if sd == 0:
        return 2
    quantile = (1 + confidence) / 2
    lo, hi = 2, 2
    while float(stats.t.ppf(quantile, hi - 1)) * sd / math.sqrt(hi) >= margin:
        if hi >= MAX_SEEDS_NEEDED:
            return None
        lo, hi = hi, min(2 * hi, MAX_SEEDS_NEEDED)
    while lo < hi:  # the half-width falls as n grows: binary search for the first n that decides
        mid = (lo + hi) // 2
        if float(stats.t.ppf(quantile, mid - 1)) * sd / math.sqrt(mid) < margin:
            hi = mid
        else:
            lo = mid + 1
    return hi


def format_cell(interval: Interval | None, scale: float = 100.0, digits: int = 1) -> str:
    """``12.3 ± 1.4 (n=3)``, ``12.3 (n=1)`` or ``—`` for no values; ``scale`` 100 shows fractions in percent."""
    if interval is None:
        return "—"
    mean = f"{scale * interval.mean:.{digits}f}"
    if interval.half_width is None:
        return f"{mean} (n={interval.n})"
    return f"{mean} ± {scale * interval.half_width:.{digits}f} (n={interval.n})"
