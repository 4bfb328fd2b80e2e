"""Train one model from scratch on all (or a random subset) of the training data and evaluate it.

The ``train`` loop is the reference that core-set selection is compared with: the end-to-end
speed-up divides the target's time on *all* data by proxy + ranking + target-on-subset time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from svpkit import plots
from svpkit.contract import TRAIN, Artifact, Metric, Tag, setting_tags
from svpkit.data.base import Dataset
from svpkit.loops.budgets import to_count
from svpkit.loops.common import dataset_settings, numerics_tags, resolved_settings
from svpkit.loops.evaluation import log_class_errors, split_errors
from svpkit.loops.fitting import timed_fit
from svpkit.loops.settings import LoopSettings
from svpkit.models.base import ModelSpec
from svpkit.progress import NullProgress, Progress
from svpkit.protocols import LearnerOptions, Tracker, TrainObserver
from svpkit.runtime import derive_seed

if TYPE_CHECKING:
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class TrainRunConfig:
    """A ``train`` run: the shared settings (only the target's are read) and the training size."""

    size: float | int = 1.0
    """Training examples: a fraction in (0, 1] or a count; 1.0 = all of them."""
    settings: LoopSettings = field(default_factory=LoopSettings)


@dataclass
class TrainOutcome:
    """What training one model produced: seconds (CUDA-synchronised), test error, loss per epoch."""

    train_seconds: float
    test_error: float
    epochs: int
    losses: list[float]
    class_errors: list[float | None] = field(default_factory=list)
    """Test error per class (None: no test example of the class), from the same pass as ``test_error``."""


def train_and_evaluate(
    spec: ModelSpec,
    dataset: Dataset,
    indices: np.ndarray,
    options: LearnerOptions,
    progress: Progress,
    label: str,
    observers: list[TrainObserver] | None = None,
) -> tuple[TrainOutcome, Any]:
    """Train a fresh ``spec`` learner on ``indices``; returns the outcome and the trained learner."""
    # The process's one-off costs (first kernels, allocator, compilation) are no part of a
    # model's training time; a separate `svpkit train` process would pay them again.
    fitted = timed_fit(
        spec,
        dataset,
        options,
        indices,
        progress,
        f"{label}: train {spec.name} on {len(indices)}",
        observers or [],
        True,
    )
    learner = fitted.learner
    error, class_errors = split_errors(learner, dataset)
    outcome = TrainOutcome(fitted.seconds, error, fitted.epochs, fitted.losses(), class_errors)
    return outcome, learner


def subset_indices(n: int, size: float | int, seed: int) -> np.ndarray:
    """All ``n`` indices when ``size`` covers them, else a seeded uniform sample (ascending)."""
    count = to_count(size, n, "size")
    if count == n:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(derive_seed(seed, "subset"))
    return np.sort(rng.choice(n, size=count, replace=False)).astype(np.int64)


def describe_train_run(
    dataset: Dataset, target: ModelSpec, cfg: TrainRunConfig
) -> tuple[dict[str, str], dict[str, object]]:
    """Tags and params of a ``train`` run (what the core-set loop matches a full reference by)."""
    dataset.require_labels("the train loop")
    n = len(dataset.train)
    count = to_count(cfg.size, n, "size")
    settings = resolved_settings(None, target, cfg.settings) | dataset_settings(dataset)
    tags = {
        Tag.LOOP: TRAIN.name,
        Tag.ROLE: "target",
        Tag.DATASET: dataset.name,
        Tag.TARGET_MODEL: target.name,
        Tag.SEED: str(cfg.settings.seed),
        Tag.SUBSET_SIZE: str(count),
        **setting_tags(settings),
        **numerics_tags(cfg.settings.device),
    }
    params = {
        "dataset": dataset.name,
        "target": target.name,
        "size": cfg.size,
        "subset_size": count,
        "seed": cfg.settings.seed,
        **settings,
        "batch_size": cfg.settings.batch_size or "model default",
        "deterministic": cfg.settings.deterministic,
        "train_size": n,
        "test_size": len(dataset.test),
        "dataset_digest": dataset.digest,
    }
    return tags, params


def run_train(
    dataset: Dataset,
    target: ModelSpec,
    cfg: TrainRunConfig,
    tracker: Tracker,
    progress: Progress | None = None,
    resume_state: dict[str, Any] | None = None,
) -> TrainOutcome:
    """Train ``target`` on the configured subset and log ``target/train_seconds`` and ``target/test_error``.

    A ``resume_state`` saved after the (single) stage returns its outcome without training again.
    """
    progress = progress or NullProgress()
    n = len(dataset.train)
    indices = subset_indices(n, cfg.size, cfg.settings.seed)
    if resume_state is not None and resume_state.get("loop") == TRAIN.name and resume_state.get("round", 0) >= 1:
        return TrainOutcome(**resume_state["outcome"])
    options = cfg.settings.learner_options("target", derive_seed(cfg.settings.seed, "target", 1))
    outcome, learner = train_and_evaluate(target, dataset, indices, options, progress, "train")
    del learner
    step = int(indices.size)
    tracker.log_metrics(
        {Metric.TARGET_TRAIN_SECONDS: outcome.train_seconds, Metric.TARGET_ERROR: outcome.test_error}, step
    )
    log_class_errors(tracker, dataset, outcome.class_errors, step, True, Artifact.PER_CLASS)
    if indices.size < n:
        tracker.log_array(Artifact.SUBSET, indices)
    tracker.log_json(Artifact.TIMINGS, {"target_train_seconds": outcome.train_seconds, "epochs": outcome.epochs})
    tracker.log_json(
        Artifact.SUMMARY,
        {
            "loop": TRAIN.name,
            "dataset": dataset.describe(),
            "target_model": target.name,
            "subset_size": step,
            "target_error": outcome.test_error,
            "target_train_seconds": outcome.train_seconds,
            "train_loss": outcome.losses,
        },
    )
    if outcome.losses:
        fig = loss_figure(outcome.losses, f"{dataset.name}: {target.name} on {step} examples")
        tracker.log_figure(fig, Artifact.TRAIN_LOSS_FIGURE)
        plots.close(fig)
    tracker.save_state({"loop": TRAIN.name, "round": 1, "outcome": outcome.__dict__})
    return outcome


def loss_figure(losses: list[float], title: str) -> Figure:
    """Mean training loss per epoch."""
    fig, ax = plots.plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(range(1, len(losses) + 1), losses, marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean training loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig
