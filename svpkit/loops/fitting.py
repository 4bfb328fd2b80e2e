"""Fitting a fresh learner the way every loop does: an optional warm-up, a progress bar over its
epochs (over every epoch's examples for a learner that counts them), and a CUDA-synchronised timer
around ``fit`` (the training seconds the runs report)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from svpkit.data.base import Dataset
from svpkit.learners import make_learner
from svpkit.models.base import ModelSpec
from svpkit.progress import Progress
from svpkit.protocols import CountsExamples, KeepsLosses, Learner, LearnerOptions, Scheduled, TrainObserver, WarmsUp
from svpkit.timing import Timer


@dataclass
class TimedFit:
    """A fitted learner, its training seconds, its warm-up seconds (0: none) and its epochs."""

    learner: Learner
    seconds: float
    warmup_seconds: float
    epochs: int

    def losses(self) -> list[float]:
        """The mean training loss of each epoch (empty for a learner that keeps none)."""
        return [float(x) for x in self.learner.loss_history] if isinstance(self.learner, KeepsLosses) else []


def warm_up(learner: Learner) -> float:
    """Seconds of the learner's one-off warm-up (0 for learners without one)."""
    return float(learner.warm_up() or 0.0) if isinstance(learner, WarmsUp) else 0.0


def timed_fit(
    spec: ModelSpec,
    dataset: Dataset,
    options: LearnerOptions,
    indices: np.ndarray,
    progress: Progress,
    task: str,
    observers: Sequence[TrainObserver] = (),
    warm: bool = False,
) -> TimedFit:
    """A fresh ``spec`` learner fitted on ``indices`` under a progress task ``task``; ``warm``: pay
    its one-off costs first (outside the timed fit)."""
    learner = make_learner(spec, dataset, options)
    warm_seconds = warm_up(learner) if warm else 0.0
    epochs = learner.config.epochs if isinstance(learner, Scheduled) else spec.train.epochs
    # a learner that counts examples moves its bar per minibatch (epochs × examples in all)
    total = epochs * len(indices) if isinstance(learner, CountsExamples) else epochs
    with progress.task(task, total=total) as advance:
        with Timer(learner.device) as timer:
            learner.fit(indices, observers=observers, progress=advance)
    return TimedFit(learner, timer.seconds, warm_seconds, int(epochs))
