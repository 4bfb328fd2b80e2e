"""Stopping criteria of active learning, logged every round; ``--stop-when`` ends a run on one.

Both criteria read the round's target (trained on the labeled set after the round's picks) on a
fixed **stop set**: ``min(1000, n)`` training examples drawn once per run from
``default_rng(derive_seed(seed, "stop_set"))`` (their labels are never used).

- **Stabilising predictions** (Bloodgood & Vijay-Shanker, CoNLL 2009): Cohen's κ
  (:func:`sklearn.metrics.cohen_kappa_score`) between the stop-set predictions of consecutive
  rounds' models (``stopping/kappa``, from round 2 on; two identical prediction vectors count as
  κ = 1, which scikit-learn leaves undefined when both hold one class). The paper stops when the
  mean κ of the last three comparisons reaches 0.99.
- **Mean uncertainty** (Vlachos, CSL 2008; Zhu et al., COLING 2008): the mean least-confidence
  uncertainty 1 − max<sub>c</sub> p(c) of the round's model over the stop set
  (``stopping/uncertainty``); learning has little left to gain when it is low.

``--stop-when CRITERION:THRESHOLD[:WINDOW]``: ``kappa:0.99`` (window 3, the paper's: the mean of
the last 3 κ values ≥ 0.99) or ``uncertainty:0.05`` (window 1: the last value ≤ 0.05). After a
round where it holds the run ends (later budget levels are not run) and the tag
``svpkit.stopped`` says why.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from svpkit import plots
from svpkit.contract import Artifact, Metric, Tag
from svpkit.errors import ConfigError
from svpkit.protocols import Learner, Tracker
from svpkit.runtime import derive_seed

STOP_SET_SIZE = 1000
CRITERIA = {"kappa": (">=", 3), "uncertainty": ("<=", 1)}
"""Criterion → (how it holds against the threshold, default window)."""


def stop_set(n: int, seed: int, size: int = STOP_SET_SIZE) -> np.ndarray:
    """The run's fixed stop set: ``min(size, n)`` training indices, ascending."""
    rng = np.random.default_rng(derive_seed(seed, "stop_set"))
    return np.sort(rng.choice(n, size=min(size, n), replace=False)).astype(np.int64)


def kappa(previous: np.ndarray, current: np.ndarray) -> float:
    """Cohen's κ between two prediction vectors (identical vectors: 1.0)."""
    from sklearn.metrics import cohen_kappa_score

    if np.array_equal(previous, current):
        return 1.0
    return float(cohen_kappa_score(previous, current))


def mean_uncertainty(probs: np.ndarray) -> float:
    """The mean least-confidence uncertainty ``1 − max_c p(c)`` over the rows."""
    return float(np.mean(1.0 - np.asarray(probs, dtype=np.float64).max(axis=1)))


@dataclass(frozen=True)
class StopRule:
    """``--stop-when``: a criterion, its threshold and the window of rounds it averages."""

    criterion: str
    threshold: float
    window: int

    @classmethod
    def parse(cls, text: str | None) -> StopRule | None:
        """``kappa:0.99``, ``kappa:0.99:3``, ``uncertainty:0.05``; empty: None (never stop early)."""
        if text is None or not text.strip():
            return None
        parts = [p.strip() for p in text.split(":")]
        usage = "--stop-when takes CRITERION:THRESHOLD[:WINDOW] with CRITERION kappa or uncertainty"
        if len(parts) not in (2, 3) or parts[0] not in CRITERIA:
            raise ConfigError(f"{usage}, got {text!r}")
        try:
            threshold = float(parts[1])
            window = int(parts[2]) if len(parts) == 3 else CRITERIA[parts[0]][1]
        except ValueError:
            raise ConfigError(f"{usage} (a number and a whole number), got {text!r}") from None
        if window < 1 or not np.isfinite(threshold):
            raise ConfigError(f"--stop-when: the window must be at least 1 and the threshold finite, got {text!r}")
        return cls(parts[0], threshold, window)

    def holds(self, values: list[float]) -> str | None:
        """Why the rule holds on this history of the criterion (None: it does not, or too few values)."""
        if len(values) < self.window:
            return None
        mean = statistics.fmean(values[-self.window :])
        op = CRITERIA[self.criterion][0]
        if (mean >= self.threshold) if op == ">=" else (mean <= self.threshold):
            over = f"mean of the last {self.window} rounds" if self.window > 1 else "this round"
            return f"{self.criterion} {mean:.4f} ({over}) {op} {self.threshold:g}"
        return None


@dataclass
class StopMonitor:
    """The stop set, the previous round's predictions and the history of both criteria."""

    indices: np.ndarray
    rule: StopRule | None = None
    previous: np.ndarray | None = None
    labeled: list[int] = field(default_factory=list)
    kappas: list[float | None] = field(default_factory=list)
    uncertainties: list[float] = field(default_factory=list)
    stopped: str | None = None

    @classmethod
    def for_run(cls, n: int, seed: int, stop_when: StopRule | str | None) -> StopMonitor:
        """The monitor of a run: ``stop_when`` as the validation pass parsed it (or its text)."""
        rule = StopRule.parse(stop_when) if isinstance(stop_when, str) else stop_when
        return cls(stop_set(n, seed), rule)

    def observe(self, learner: Learner, labeled_count: int) -> None:
        """Read the round's model on the stop set: κ against the previous round's, mean uncertainty."""
        probs = learner.predict_proba(self.indices).float().cpu().numpy()
        predicted = probs.argmax(axis=1)
        self.kappas.append(None if self.previous is None else kappa(self.previous, predicted))
        self.uncertainties.append(mean_uncertainty(probs))
        self.labeled.append(labeled_count)
        self.previous = predicted

    def after_round(self, tracker: Tracker, round_no: int) -> bool:
        """Log the round's criteria; True when ``--stop-when`` holds (the run ends, ``stopped`` says why)."""
        if not self.labeled:
            return False
        step = self.labeled[-1]
        metrics = {Metric.STOP_UNCERTAINTY: self.uncertainties[-1]}
        if self.kappas[-1] is not None:
            metrics[Metric.STOP_KAPPA] = float(self.kappas[-1])
        tracker.log_metrics(metrics, step=step)
        if self.rule is None:
            return False
        values = (
            self.uncertainties if self.rule.criterion == "uncertainty" else [k for k in self.kappas if k is not None]
        )
        reason = self.rule.holds(values)
        if reason is not None:
            self.stopped = f"{reason} after round {round_no} at {step} labeled"
            tracker.set_tags({Tag.STOPPED: self.stopped})
        return reason is not None

    def log_figure(self, tracker: Tracker, title: str) -> None:
        if not self.labeled:
            return
        kappas = [float("nan") if k is None else k for k in self.kappas]
        series: dict[str, Sequence[float]] = {
            "Cohen's kappa, consecutive rounds": kappas,
            "mean uncertainty 1 - max p": self.uncertainties,
        }
        threshold = None if self.rule is None else (self.rule.criterion, self.rule.threshold)
        fig = plots.criterion_curve(self.labeled, series, title, threshold)
        tracker.log_figure(fig, Artifact.STOPPING_FIGURE)
        plots.close(fig)

    def state(self) -> dict[str, object]:
        previous = None if self.previous is None else self.previous.tolist()
        history = {"labeled": self.labeled, "kappas": self.kappas, "uncertainties": self.uncertainties}
        return {"stopping": history | {"previous": previous}}

    def restore(self, state: dict[str, Any] | None) -> None:
        saved = (state or {}).get("stopping")
        if not saved:
            return
        self.labeled, self.kappas = list(saved["labeled"]), list(saved["kappas"])
        self.uncertainties = list(saved["uncertainties"])
        self.previous = None if saved["previous"] is None else np.asarray(saved["previous"], dtype=np.int64)
