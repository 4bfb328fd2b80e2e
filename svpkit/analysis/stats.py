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
    "at least 2) of the normalised area under the error-vs-labeled curve, lower error being better: "
    "'matches baseline (within X points)' when the upper end of proxy − baseline is at most X percentage points; "
    "else 'worse than baseline' when its lower end is above 0; "
    "else 'beats random' when the upper end of selector − random is below 0; "
    "else 'inconclusive (n seeds)'."
)


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
    baseline = _bounds(vs_baseline)
    if baseline is not None and baseline[1] <= tolerance:
        points = 100 * tolerance
        return f"matches baseline (within {points:g} point{'' if points == 1 else 's'})"
    if baseline is not None and baseline[0] > 0:
        return "worse than baseline"
    rand = _bounds(vs_random)
    if rand is not None and rand[1] < 0:
        return "beats random"
    n = max((i.n for i in (vs_random, vs_baseline) if i is not None), default=0)
    return f"inconclusive ({n} seed{'' if n == 1 else 's'})"


def format_cell(interval: Interval | None, scale: float = 100.0, digits: int = 1) -> str:
    """``12.3 ± 1.4 (n=3)``, ``12.3 (n=1)`` or ``—`` for no values; ``scale`` 100 shows fractions in percent."""
    if interval is None:
        return "—"
    mean = f"{scale * interval.mean:.{digits}f}"
    if interval.half_width is None:
        return f"{mean} (n={interval.n})"
    return f"{mean} ± {scale * interval.half_width:.{digits}f} (n={interval.n})"
