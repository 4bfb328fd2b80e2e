"""A trained model's test error, overall and per class, from one pass over the test split.

Every target evaluation logs ``target/worst_class_error`` next to ``target/test_error`` (same step),
``per_class.json`` with every class's error, and, at the final level only,
``target/class_error/<class>`` for each class (svpkit.contract). A class with no test example has
no error (``null`` in the JSON, no metric) and is left out of the worst class.
"""

from __future__ import annotations

import re

import torch

from svpkit.contract import Metric, class_error_metric
from svpkit.data.base import Dataset
from svpkit.protocols import Learner, Tracker


def split_errors(learner: Learner, dataset: Dataset) -> tuple[float, list[float | None]]:
    """(top-1 test error, per-class test errors) from one ``predict_proba`` pass over the test split."""
    probs = learner.predict_proba(None, "test")
    y = dataset.test.y.to(probs.device).long()
    wrong = (probs.argmax(dim=1) != y).float()
    counts = torch.bincount(y, minlength=dataset.num_classes)
    misses = torch.bincount(y, weights=wrong, minlength=dataset.num_classes)
    per_class = [None if int(n) == 0 else float(m) / int(n) for m, n in zip(misses.tolist(), counts.tolist())]
    return float(wrong.mean().item()), per_class


def log_class_errors(
    tracker: Tracker, dataset: Dataset, class_errors: list[float | None], step: int, final: bool, artifact: str
) -> None:
    """``target/worst_class_error`` at ``step``, ``artifact`` (per_class.json) and, when ``final``,
    one ``target/class_error/<class>`` metric per class."""
    errors = {name: e for name, e in zip(dataset.class_names, class_errors)}
    present = {name: e for name, e in errors.items() if e is not None}
    if not present:
        return
    worst = max(present, key=lambda name: present[name])
    tracker.log_metrics({Metric.WORST_CLASS_ERROR: present[worst]}, step=step)
    if final:
        tracker.log_metrics({class_error_metric(_metric_safe(n)): e for n, e in present.items()}, step=step)
    report: dict[str, object] = {
        "step": step,
        "worst_class": worst,
        "worst_class_error": present[worst],
        "class_errors": errors,
    }
    tracker.log_json(artifact, report)


def _metric_safe(name: str) -> str:
    """A class name as MLflow takes it in a metric key (other characters become ``_``)."""
    return re.sub(r"[^A-Za-z0-9_.\- ]", "_", name)
