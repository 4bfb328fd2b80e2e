"""An active-learning run's records: each round's (:class:`RoundRecord`), the run's
(:class:`ALResult`), the metrics a round logs and the run's summary, timings and figures."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from svpkit import plots
from svpkit.contract import ACTIVE_LEARNING, Artifact, Metric, Tag, round_artifact
from svpkit.data.base import Dataset
from svpkit.models.base import ModelSpec
from svpkit.protocols import Tracker
from svpkit.selectors import subpool
from svpkit.selectors.auto import first_switch
from svpkit.selectors.base import SelectorSpec


@dataclass
class RoundRecord:
    round: int
    labeled_before: int
    labeled_after: int
    train_seconds: float
    inference_seconds: float
    selection_seconds: float
    selector_model_error: float | None
    target_error: float | None
    target_train_seconds: float | None
    warmup_seconds: float = 0.0
    """The process's one-off costs (lazy init, compilation), paid before round 1's selector fit."""
    target_class_errors: list[float | None] | None = None
    """The target's test error per class (svpkit.loops.evaluation)."""
    selector_info: dict[str, Any] | None = None
    """What the selector said about its picks (``auto``: which selector and why; svpkit.selectors.auto)."""
    eval_seconds: float = 0.0
    """The selector model's test-error pass (reporting, not a selection cost: not in ``total_seconds``)."""
    selector_model_error_interval: list[float] | None = None
    """The 95 % Wilson interval of ``selector_model_error`` (svpkit.loops.eval_sample)."""
    selector_model_eval_count: int | None = None
    """The test examples ``selector_model_error`` was measured on (``--eval-sample``)."""

    @property
    def total_seconds(self) -> float:
        return self.warmup_seconds + self.train_seconds + self.inference_seconds + self.selection_seconds


@dataclass
class ALResult:
    initial: np.ndarray
    selected: list[np.ndarray]
    rounds: list[RoundRecord]
    levels: list[int]
    proxy_warning: str | None = None
    """Why the proxy's picks looked no better than random picks of the target's (svpkit.selectors.agreement)."""

    @property
    def labeled(self) -> np.ndarray:
        return np.concatenate([self.initial, *self.selected])

    @property
    def selection_seconds(self) -> float:
        return sum(r.total_seconds for r in self.rounds)


def log_round(
    tracker: Tracker,
    r: RoundRecord,
    scores: np.ndarray,
    picks: np.ndarray,
    labeled: np.ndarray,
    records: list[RoundRecord],
) -> None:
    step = r.labeled_after
    metrics = {
        Metric.ROUND_WARMUP_SECONDS: r.warmup_seconds,
        Metric.ROUND_TRAIN_SECONDS: r.train_seconds,
        Metric.ROUND_INFERENCE_SECONDS: r.inference_seconds,
        Metric.ROUND_SELECTION_SECONDS: r.selection_seconds,
        Metric.ROUND_EVAL_SECONDS: r.eval_seconds,
        Metric.ROUND_TOTAL_SECONDS: r.total_seconds,
        Metric.SELECTION_CUMULATIVE_SECONDS: sum(x.total_seconds for x in records),
        Metric.LABELED_COUNT: float(step),
    }
    if r.selector_info and subpool.INFO_KEY in r.selector_info:
        metrics[Metric.SELECTION_CANDIDATES] = float(r.selector_info[subpool.INFO_KEY]["candidates"])
    if r.target_error is not None and r.target_train_seconds is not None:
        metrics[Metric.TARGET_ERROR] = r.target_error
        metrics[Metric.TARGET_TRAIN_SECONDS] = r.target_train_seconds
    tracker.log_metrics(metrics, step=step)
    if switch := first_switch([x.selector_info for x in records]):
        tracker.set_tags({Tag.AUTO_SWITCH: switch})
    if r.selector_model_error is not None:
        tracker.log_metrics({Metric.SELECTOR_MODEL_ERROR: r.selector_model_error}, step=r.labeled_before)
    if r.selector_model_error_interval is not None and r.selector_model_eval_count is not None:
        low, high = r.selector_model_error_interval
        interval = {Metric.SELECTOR_MODEL_ERROR_LOW: low, Metric.SELECTOR_MODEL_ERROR_HIGH: high}
        counts = {Metric.SELECTOR_MODEL_EVAL_COUNT: float(r.selector_model_eval_count)}
        tracker.log_metrics(interval | counts, step=r.labeled_before)
    tracker.log_array(round_artifact(r.round, "selected.npy"), picks)
    tracker.log_array(round_artifact(r.round, "scores.npy"), np.asarray(scores, dtype=np.float32))
    tracker.log_array(round_artifact(r.round, "labeled.npy"), np.sort(labeled))


def log_summary(
    tracker: Tracker,
    result: ALResult,
    dataset: Dataset,
    selector: SelectorSpec,
    proxy: ModelSpec,
    target: ModelSpec,
) -> None:
    rounds = [r.__dict__ | {"total_seconds": r.total_seconds} for r in result.rounds]
    tracker.log_json(Artifact.TIMINGS, {"rounds": rounds, "selection_seconds": result.selection_seconds})
    summary = {
        "loop": ACTIVE_LEARNING.name,
        "dataset": dataset.describe(),
        "selector": selector.name,
        "selector_model": proxy.name if selector.needs else None,
        "target_model": target.name,
        "labeled_levels": result.levels,
        "initial_size": int(result.initial.size),
        "target_error": [r.target_error for r in result.rounds],
        "selector_model_error": [r.selector_model_error for r in result.rounds],
        "selection_seconds": result.selection_seconds,
        "target_train_seconds": sum(r.target_train_seconds or 0.0 for r in result.rounds),
    }
    tracker.log_json(Artifact.SUMMARY, summary)
    if any(r.target_error is not None for r in result.rounds):
        fig = plots.error_curve(
            result.levels,
            {
                f"target {target.name} ({selector.name} via {proxy.name if selector.needs else 'no model'})": [
                    r.target_error if r.target_error is not None else float("nan") for r in result.rounds
                ]
            },
            len(dataset.train),
            f"{dataset.name}: target error vs labeled set",
        )
        tracker.log_figure(fig, Artifact.AL_ERROR_FIGURE)
        plots.close(fig)
    fig = plots.stacked_seconds(
        result.levels,
        {
            "train": [r.train_seconds for r in result.rounds],
            "inference": [r.inference_seconds for r in result.rounds],
            "selection": [r.selection_seconds for r in result.rounds],
        },
        f"{dataset.name}: selection time per round ({selector.name})",
    )
    tracker.log_figure(fig, Artifact.AL_SECONDS_FIGURE)
    plots.close(fig)
