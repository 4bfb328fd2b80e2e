"""Agreement of proxy and target selections, statistics over seeds, and suggest-proxy's pure parts."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from scipy import integrate, stats

from svpkit.analysis.stats import (
    VERDICT_RULES,
    Interval,
    format_cell,
    normalised_auc,
    paired_differences,
    t_interval,
    verdict,
)
from svpkit.analysis.suggest import (
    NO_RECOMMENDATION,
    Candidate,
    CandidateResult,
    check_min_overlap,
    check_min_spearman,
    pareto_front,
    parse_candidates,
    recommend,
)
from svpkit.errors import ConfigError
from svpkit.selectors.agreement import (
    CONSTANT_SCORES_SPEARMAN,
    RoundAgreement,
    overlap_noise_margin,
    pool_agreement,
    proxy_warning,
)


# -- agreement ----------------------------------------------------------------------------------
def test_pool_agreement_matches_scipy_and_counts_the_overlap() -> None:
    rng = np.random.default_rng(0)
    proxy = rng.normal(size=50)
    target = proxy + rng.normal(scale=0.7, size=50)
    target[:5] = target[0]  # ties
    pool = np.arange(100, 150)
    proxy_picks, target_picks = pool[[0, 1, 2, 3, 4]], pool[[4, 3, 9, 10, 0]]
    got = pool_agreement(proxy, target, proxy_picks, target_picks, 50)
    assert got["spearman"] == pytest.approx(stats.spearmanr(proxy, target).statistic, abs=1e-12)
    assert got["top_k_overlap"] == pytest.approx(3 / 5)
    assert got["random_overlap"] == pytest.approx(5 / 50)


def test_pool_agreement_constant_and_infinite_scores() -> None:
    picks = np.array([0, 1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConstantInputWarning, no NaN
        constant = pool_agreement(np.ones(4), np.arange(4.0), picks, picks, 4)
        both = pool_agreement(np.zeros(4), np.zeros(4), picks, picks, 4)
        infinite = pool_agreement(np.array([np.inf, 3, 2, 1]), np.array([9.0, 3, 2, 1]), picks, picks, 4)
    assert constant["spearman"] == both["spearman"] == CONSTANT_SCORES_SPEARMAN == 0.0
    assert infinite["spearman"] == pytest.approx(1.0)
    assert constant["top_k_overlap"] == 1.0


@pytest.mark.parametrize(
    ("proxy", "target", "proxy_picks", "target_picks", "pool_size", "match"),
    [
        (np.ones(3), np.ones(4), [0], [0], 4, "one entry per pool"),
        (np.array([np.nan, 1, 2, 3]), np.ones(4), [0], [0], 4, "NaN"),
        (np.arange(4.0), np.arange(4.0), [0, 1], [0], 4, "same k"),
        (np.arange(4.0), np.arange(4.0), [0, 0], [0, 1], 4, "distinct"),
        (np.arange(4.0), np.arange(4.0), [], [], 4, "k must be"),
    ],
)
def test_pool_agreement_rejects_bad_input(proxy, target, proxy_picks, target_picks, pool_size, match) -> None:
    with pytest.raises(ValueError, match=match):
        pool_agreement(proxy, target, np.array(proxy_picks), np.array(target_picks), pool_size)


def test_overlap_noise_margin_matches_the_hypergeometric_and_a_simulation() -> None:
    pool_size, k, z = 200, 20, 2.0
    p = k / pool_size
    formula = z * math.sqrt(k * p * (1 - p) * (pool_size - k) / (pool_size - 1)) / k
    assert overlap_noise_margin(k, pool_size, z) == pytest.approx(formula, rel=1e-12)
    rng = np.random.default_rng(1234)
    fixed = np.arange(k)
    fractions = [np.isin(rng.choice(pool_size, k, replace=False), fixed).sum() / k for _ in range(20000)]
    assert np.mean(fractions) == pytest.approx(p, rel=0.02)
    assert z * np.std(fractions, ddof=1) == pytest.approx(overlap_noise_margin(k, pool_size, z), rel=0.03)


def test_overlap_noise_margin_edges() -> None:
    assert overlap_noise_margin(5, 5) == 0.0
    assert overlap_noise_margin(3, 6, 0.0) == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's moments warn for pools under 4
        assert overlap_noise_margin(1, 2, 1.0) == pytest.approx(0.5)
    for k, pool_size, z in ((0, 5, 2.0), (6, 5, 2.0), (2, 5, -1.0)):
        with pytest.raises(ValueError):
            overlap_noise_margin(k, pool_size, z)


def _round(no: int, overlap_minus_bar: float, k: int = 20, pool_size: int = 400) -> RoundAgreement:
    bar = RoundAgreement(no, k, pool_size, 0.0).bar
    return RoundAgreement(no, k, pool_size, bar + overlap_minus_bar)


def test_proxy_warning_needs_two_consecutive_rounds_at_or_below_the_bar() -> None:
    at, above = 0.0, 1e-9
    entry = _round(1, at)
    margin = overlap_noise_margin(20, 400, 2.0)
    assert entry.bar == pytest.approx(20 / 400 + margin) and entry.bar < 1
    assert proxy_warning([]) is None
    assert proxy_warning([_round(1, at)]) is None
    assert proxy_warning([_round(1, at), _round(2, above), _round(3, at)]) is None
    assert proxy_warning([_round(1, above), _round(2, above)]) is None
    message = proxy_warning([_round(1, above), _round(2, at), _round(3, -0.01), _round(4, at)])
    assert message is not None and "\n" not in message
    assert "rounds 2 and 3" in message and "within noise of random" in message


def test_proxy_warning_skips_uninformative_rounds() -> None:
    exhausted = RoundAgreement(2, 10, 10, 1.0)  # k = |pool|: every selection is the same
    assert exhausted.bar >= 1
    message = proxy_warning([_round(1, 0.0), exhausted, _round(3, 0.0)])
    assert message is not None and "rounds 1 and 3" in message
    assert proxy_warning([exhausted, RoundAgreement(3, 5, 5, 1.0)]) is None


# -- intervals, paired differences, areas ----------------------------------------------------------
@pytest.mark.parametrize("confidence", [0.95, 0.9])
def test_t_interval_matches_scipy(confidence: float) -> None:
    values = [0.12, 0.15, 0.11, 0.19]
    got = t_interval(values, confidence)
    low, high = stats.t.interval(confidence, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert got.n == 4 and got.mean == pytest.approx(np.mean(values))
    assert got.half_width is not None
    assert got.mean - got.half_width == pytest.approx(low) and got.mean + got.half_width == pytest.approx(high)


def test_t_interval_of_one_value_has_no_interval_and_bad_input_fails() -> None:
    assert t_interval([0.123]) == Interval(0.123, None, 1)
    assert t_interval([0.25, 0.25, 0.25]) == Interval(0.25, 0.0, 3)
    for values, confidence in (([], 0.95), ([1.0, math.inf], 0.95), ([1.0, math.nan], 0.95), ([1.0, 2.0], 1.0)):
        with pytest.raises(ValueError):
            t_interval(values, confidence)


def test_paired_differences_use_shared_seeds_and_agree_with_ttest_rel() -> None:
    a = {"0": 0.20, "1": 0.25, "2": 0.22, "3": 0.30}
    b = {"2": 0.21, "0": 0.18, "1": 0.26, "9": 0.5}
    got = paired_differences(a, b)
    assert got is not None
    assert got.seeds == ("0", "1", "2")
    assert got.differences == pytest.approx((0.02, -0.01, 0.01))
    test = stats.ttest_rel([a[s] for s in got.seeds], [b[s] for s in got.seeds])
    ci = test.confidence_interval(0.95)
    assert got.interval.half_width is not None
    assert got.interval.mean - got.interval.half_width == pytest.approx(ci.low)
    assert got.interval.mean + got.interval.half_width == pytest.approx(ci.high)
    assert paired_differences({"0": 1.0}, {"1": 1.0}) is None
    one = paired_differences({"0": 0.3, "1": 0.2}, {"1": 0.1})
    assert one is not None and one.interval == Interval(pytest.approx(0.1), None, 1)


def test_normalised_auc() -> None:
    # fractions .1, .2, .4: area .1*(.3+.2)/2 + .2*(.2+.1)/2 = .055 over a range of .3
    assert normalised_auc([400, 100, 200], [0.1, 0.3, 0.2], 1000) == pytest.approx(0.055 / 0.3)
    counts, errors = [50, 80, 200, 320], [0.4, 0.31, 0.2, 0.18]
    expected = integrate.trapezoid(errors, np.array(counts) / 500) / ((320 - 50) / 500)
    assert normalised_auc(counts, errors, 500) == pytest.approx(expected)
    assert normalised_auc([100], [0.25], 1000) == 0.25
    assert normalised_auc([10, 20], [0.3, 0.3], 100) == pytest.approx(0.3)
    for args in (
        ([1, 2], [0.1], 10),
        ([], [], 10),
        ([5, 20], [0.1, 0.2], 10),
        ([5, 5], [0.1, 0.2], 10),
        ([1], [0.1], 0),
    ):
        with pytest.raises(ValueError):
            normalised_auc(*args)


# -- verdicts --------------------------------------------------------------------------------------
def _iv(mean: float, half_width: float | None = 0.0, n: int = 3) -> Interval:
    return Interval(mean, half_width, n)


def test_verdict_matches_baseline_at_the_tolerance_boundary() -> None:
    tol = 0.01
    assert verdict(None, _iv(tol), tol) == "matches baseline (within 1 point)"
    assert verdict(None, _iv(0.005, 0.005), 0.02) == "matches baseline (within 2 points)"
    assert verdict(None, _iv(-0.5, 0.1), tol).startswith("matches baseline")  # better than the baseline
    just_over = float(np.nextafter(tol, 1.0))
    assert verdict(None, _iv(just_over), tol) == "worse than baseline"
    assert verdict(None, _iv(0.0), 0.0) == "matches baseline (within 0 points)"


def test_verdict_worse_than_baseline_needs_the_lower_end_above_zero() -> None:
    tol = 0.01
    assert verdict(None, _iv(0.02, 0.02), tol) == "inconclusive (3 seeds)"  # lower end exactly 0
    assert verdict(None, _iv(float(np.nextafter(0.02, 1.0)), 0.02), tol) == "worse than baseline"
    assert verdict(_iv(-0.1), _iv(0.05), tol) == "worse than baseline"  # even when it beats random


def test_verdict_beats_random_needs_the_upper_end_below_zero() -> None:
    tiny = float(np.nextafter(0.0, 1.0))
    assert verdict(_iv(-tiny), None) == "beats random"
    assert verdict(_iv(0.0), None) == "inconclusive (3 seeds)"
    assert verdict(_iv(-0.01, 0.01), None) == "inconclusive (3 seeds)"
    assert verdict(_iv(-0.01, float(np.nextafter(0.01, 0.0))), None) == "beats random"
    assert verdict(_iv(-0.1), _iv(0.0, 0.05)) == "beats random"  # baseline comparison inconclusive


def test_verdict_without_intervals_is_inconclusive() -> None:
    assert verdict(_iv(-0.5, None, 1), _iv(0.0, None, 1)) == "inconclusive (1 seed)"
    assert verdict(None, None) == "inconclusive (0 seeds)"
    # Against random the interval decides even when the baseline has none: above zero is a loss.
    assert verdict(_iv(0.1, 0.01, 5), _iv(0.5, None, 1)) == "worse than random"
    assert verdict(_iv(0.1, 0.2, 5), _iv(0.5, None, 1)) == "inconclusive (5 seeds)"
    with pytest.raises(ValueError):
        verdict(None, None, -0.01)
    for label in ("matches baseline (within X points)", "worse than baseline", "beats random", "inconclusive"):
        assert label in VERDICT_RULES


def test_format_cell() -> None:
    assert format_cell(Interval(0.123, 0.014, 3)) == "12.3 ± 1.4 (n=3)"
    assert format_cell(Interval(0.123, None, 1)) == "12.3 (n=1)"
    assert format_cell(Interval(0.123, 0.0, 2)) == "12.3 ± 0.0 (n=2)"
    assert format_cell(None) == "—"
    assert format_cell(Interval(2.345, 0.5, 4), scale=1.0, digits=2) == "2.35 ± 0.50 (n=4)"


# -- suggest-proxy -----------------------------------------------------------------------------------
def test_parse_candidates() -> None:
    got = parse_candidates("digits_mlp:10,digits_cnn:3,digits_cnn:10,fasttext{lr=0.5,dim=20}")
    assert got == [
        Candidate("digits_mlp", 10, ""),
        Candidate("digits_cnn", 3, ""),
        Candidate("digits_cnn", 10, ""),
        Candidate("fasttext", None, "lr=0.5,dim=20"),
    ]
    assert [c.text for c in got] == ["digits_mlp:10", "digits_cnn:3", "digits_cnn:10", "fasttext{lr=0.5,dim=20}"]
    assert parse_candidates(" vdcnn9:2{max_length=256} , preact_resnet20 ") == [
        Candidate("vdcnn9", 2, "max_length=256"),
        Candidate("preact_resnet20", None, ""),
    ]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "at least one"),
        ("  ", "at least one"),
        ("a,,b", "item 2 .* is empty"),
        ("a:3,", "item 2 .* is empty"),
        ("fasttext{lr=0.5", "never closed"),
        ("fasttext}lr=0.5", "without"),
        ("fasttext{{lr=0.5}}", "nested"),
        ("fasttext{}", "empty braces"),
        ("fasttext{lr}", "name=value"),
        ("a:0", "positive integer"),
        ("a:x", "positive integer"),
        ("a:", "positive integer"),
        ("a:3:4", "model\\[:epochs\\]"),
        ("a{lr=1}:3", "model\\[:epochs\\]"),
        ("a{lr=1}b", "model\\[:epochs\\]"),
        ("digits mlp", "model\\[:epochs\\]"),
        (":3", "model\\[:epochs\\]"),
        ("a:3,a:3", "repeats"),
        ("f{a=1,b=2},f{b=2,a=1}", "repeats"),
    ],
)
def test_parse_candidates_rejects_malformed_lists(text: str, match: str) -> None:
    with pytest.raises(ValueError, match=match) as info:
        parse_candidates(text)
    assert isinstance(info.value, ConfigError)  # one clear line on the command line


def test_threshold_checks() -> None:
    assert check_min_overlap(0.0) == 0.0 and check_min_overlap(1.0) == 1.0
    assert check_min_spearman(-1.0) == -1.0 and check_min_spearman(1.0) == 1.0
    for check, value in ((check_min_overlap, -0.01), (check_min_overlap, 1.01), (check_min_overlap, math.nan)):
        with pytest.raises(ValueError, match="--min-overlap"):
            check(value)
    for value in (-1.01, 1.01, math.nan):
        with pytest.raises(ValueError, match="--min-spearman"):
            check_min_spearman(value)


def _result(text: str, overlap: float, spearman: float, speedup: float) -> CandidateResult:
    (candidate,) = parse_candidates(text)
    return CandidateResult(candidate, Interval(overlap, 0.05, 3), Interval(spearman, None, 1), speedup)


def test_recommend_picks_the_cheapest_candidate_that_agrees() -> None:
    rows = [
        _result("digits_mlp:10", 0.7, 0.8, 5.0),
        _result("digits_cnn:3", 0.5, 0.5, 9.0),  # exactly at both thresholds: clears
        _result("digits_cnn:1", 0.49, 0.9, 20.0),  # overlap too low
        _result("fasttext{dim=20}", 0.9, 0.49, 30.0),  # spearman too low
    ]
    got = recommend(rows, 0.5, 0.5)
    assert got.choice is rows[1]
    assert got.message.startswith("digits_cnn:3: the cheapest candidate") and "9.0×" in got.message
    assert recommend(rows, 0.95, 0.5).choice is None
    assert recommend(rows, 0.95, 0.5).message == NO_RECOMMENDATION
    assert recommend([], 0.5, 0.5).message == NO_RECOMMENDATION
    assert recommend(rows, 0.0, -1.0).choice is rows[3]
    tie = [_result("a:1", 0.8, 0.8, 4.0), _result("b:1", 0.9, 0.9, 4.0)]
    assert recommend(tie).choice is tie[0]
    assert "∞×" in recommend([_result("a", 0.8, 0.8, math.inf)]).message
    with pytest.raises(ValueError):
        recommend(rows, 1.5, 0.5)
    with pytest.raises(ValueError, match="speed-up"):
        _result("a", 0.8, 0.8, 0.0)


def test_pareto_front() -> None:
    points = [(0.5, 2.0), (0.7, 1.0), (0.4, 1.5), (0.7, 1.0), (0.5, 3.0), (0.9, 0.5), (0.3, 3.0)]
    # (0.5, 2) and (0.3, 3) are dominated by (0.5, 3); (0.4, 1.5) too; the two (0.7, 1) tie and stay.
    assert pareto_front(points) == [1, 3, 4, 5]
    assert pareto_front([]) == []
    assert pareto_front([(0.1, 0.1)]) == [0]
    with pytest.raises(ValueError):
        pareto_front([(math.nan, 1.0)])
