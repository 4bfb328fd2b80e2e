"""The selector model's test error each round, on a fixed, stratified sample of the test split.

Scoring the whole test split every round to report the proxy's error costs a pass over it per
round (50,000 images for ImageNet's val). ``--eval-sample N`` evaluates a fixed sample of ``N``
test examples instead: drawn once per run from the run's seed, stratified by class (each class
gets its share of ``N``, largest remainders first, so the sample keeps the split's class
proportions), the same examples in every round, so rounds stay comparable. A split of at most ``N``
examples is evaluated whole, exactly as before. Every estimate comes with its 95 % Wilson
interval (``scipy.stats.binomtest``): a sample's error is a binomial proportion.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from svpkit.data.base import Dataset
from svpkit.protocols import Learner
from svpkit.runtime import derive_seed
from svpkit.selectors.reductions import reduce_examples

DEFAULT_EVAL_SAMPLE = 10_000
"""Test examples the selector model's error is measured on per round (a smaller split: all of it)."""
CONFIDENCE = 0.95


@dataclass(frozen=True)
class ErrorEstimate:
    """A test error measured on ``n`` examples (``wrong`` of them misclassified) and its interval."""

    error: float
    wrong: int
    n: int
    low: float
    high: float


def stratified_sample(labels: np.ndarray, size: int, seed: int) -> np.ndarray | None:
    """Positions of a stratified random sample of ``size`` of ``labels`` (ascending), or None when
    ``size`` covers them all (or is 0). Each class gets ``size`` × its share, rounded by largest remainder."""
    n = len(labels)
    if size <= 0 or size >= n:  # 0: the whole split
        return None
    rng = np.random.default_rng(derive_seed(seed, "eval_sample", 0))
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * size / n
    quota = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - quota), kind="stable")
    quota[order[: size - int(quota.sum())]] += 1
    picked = [rng.choice(np.flatnonzero(labels == c), size=int(q), replace=False) for c, q in zip(classes, quota)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def wilson(wrong: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The Wilson score interval of the proportion ``wrong`` / ``n``."""
    from scipy.stats import binomtest

    if n == 0:
        return 0.0, 1.0
    ci = binomtest(wrong, n).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def sample_error(learner: Learner, dataset: Dataset, sample: np.ndarray | None) -> ErrorEstimate:
    """The learner's test error on ``sample`` (positions in the test split; None: the whole split,
    :meth:`Learner.error` as before) with its Wilson interval."""
    if sample is None:
        n = len(dataset.test)
        error = learner.error("test")
        wrong = int(round(error * n))
    else:
        n = len(sample)
        predicted = reduce_examples(learner, sample, {"predicted_class"}, split="test")["predicted_class"]
        y = dataset.test.y[torch.as_tensor(sample)].to(predicted.device)
        wrong = int((predicted != y).sum().item())
        error = wrong / max(n, 1)
    low, high = wilson(wrong, n)
    return ErrorEstimate(error, wrong, n, low, high)
