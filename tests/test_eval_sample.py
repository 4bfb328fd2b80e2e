"""The selector model's per-round test error on a fixed, stratified sample (``--eval-sample``)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binomtest

import svpkit
from svpkit.contract import Metric
from svpkit.loops.eval_sample import sample_error, stratified_sample, wilson


def test_the_sample_is_stratified_fixed_and_whole_when_small() -> None:
    labels = np.repeat(np.arange(4), [500, 300, 150, 50])
    sample = stratified_sample(labels, 100, seed=3)
    assert sample is not None and len(sample) == 100 and len(np.unique(sample)) == 100
    assert np.bincount(labels[sample]).tolist() == [50, 30, 15, 5]  # the split's class proportions
    again, other = stratified_sample(labels, 100, seed=3), stratified_sample(labels, 100, seed=4)
    assert again is not None and other is not None
    assert np.array_equal(sample, again) and not np.array_equal(sample, other)  # fixed per run, not per seed
    odd = stratified_sample(labels, 7, seed=0)  # largest remainders: 3.5, 2.1, 1.05, 0.35
    assert odd is not None and np.bincount(labels[odd], minlength=4).tolist() == [4, 2, 1, 0]
    assert stratified_sample(labels, 1000, seed=0) is None and stratified_sample(labels, 0, seed=0) is None


def test_the_interval_is_wilsons() -> None:
    low, high = wilson(12, 80)
    ci = binomtest(12, 80).proportion_ci(method="wilson")
    assert (low, high) == pytest.approx((ci.low, ci.high)) and low < 12 / 80 < high


def test_a_round_logs_the_sample_error_and_its_interval() -> None:
    common = dict(dataset="digits", train_limit=300, test_limit=200, initial=20, budgets="40,60", device="cpu")
    result = svpkit.active_learning(proxy_epochs=2, train_target=False, track=False, eval_sample=60, **common)
    metrics = result.tracker.metrics
    assert [v for _, v in metrics[Metric.SELECTOR_MODEL_EVAL_COUNT]] == [60.0, 60.0]
    for (_, error), (_, low), (_, high) in zip(
        metrics[Metric.SELECTOR_MODEL_ERROR],
        metrics[Metric.SELECTOR_MODEL_ERROR_LOW],
        metrics[Metric.SELECTOR_MODEL_ERROR_HIGH],
    ):
        assert low <= error <= high and round(error * 60) == pytest.approx(error * 60)
    assert len(metrics[Metric.ROUND_EVAL_SECONDS]) == 2
    # The whole split (a test set below the sample size) gives the learner's own error, as before.
    whole = svpkit.active_learning(proxy_epochs=2, train_target=False, track=False, eval_sample=10_000, **common)
    assert [v for _, v in whole.tracker.metrics[Metric.SELECTOR_MODEL_EVAL_COUNT]] == [200.0, 200.0]


def test_the_sample_error_counts_the_sampled_examples() -> None:
    from svpkit.data.digits import load_digits
    from svpkit.learners import make_learner
    from svpkit.plugins import get_plugins
    from svpkit.protocols import LearnerOptions

    data = load_digits().limited(train=100, test=150)
    learner = make_learner(get_plugins().models.get("digits_mlp"), data, LearnerOptions(device="cpu", epochs=1))
    learner.fit(np.arange(100))
    sample = stratified_sample(data.test.y.numpy(), 40, seed=0)
    got = sample_error(learner, data, sample)
    predicted = learner.predict_proba(None, "test").argmax(1).numpy()
    assert sample is not None and got.n == 40
    assert got.wrong == int((predicted[sample] != data.test.y.numpy()[sample]).sum())
    whole = sample_error(learner, data, None)
    assert whole.n == 150 and whole.error == learner.error("test")


def test_a_negative_sample_is_refused() -> None:
    with pytest.raises(svpkit.ConfigError, match="--eval-sample"):
        svpkit.active_learning(dataset="digits", train_limit=100, eval_sample=-1, track=False)
