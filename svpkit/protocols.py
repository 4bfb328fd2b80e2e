"""The contracts between layers: what loops need from a model, a training observer and a tracker.

Loops program against these protocols only: a :class:`Learner` comes from
:func:`svpkit.learners.make_learner` (or a plugin's own learner factory), a :class:`Tracker` from
:mod:`svpkit.tracking` (MLflow) or :class:`svpkit.tracking.memory.MemoryTracker` (in memory).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import torch

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from svpkit.data.base import Dataset
    from svpkit.progress import Advance


class TrainObserver(Protocol):
    """Receives every training minibatch of a ``fit`` (training-dynamics selectors).

    ``indices`` are training-set indices (original order) on the learner's device; ``logits``
    are the training forward pass's outputs (train mode, augmented input), detached.
    """

    def on_fit_start(self, num_train: int, device: torch.device) -> None: ...

    def on_train_batch(self, indices: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor) -> None: ...

    def result(self) -> dict[str, Any]:
        """What the fit showed, by name (e.g. ``forgetting_events``): the selector's signals."""
        ...


class Learner(Protocol):
    """What loops need from a model."""

    device: torch.device

    def fit(
        self,
        indices: np.ndarray,
        observers: Sequence[TrainObserver] = (),
        progress: Advance | None = None,
    ) -> None:
        """Train from a fresh initialisation on training examples ``indices``; ``progress(n)``
        follows it: once per epoch, or per minibatch by its examples (:class:`CountsExamples`)."""
        ...

    def predict_proba(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        """Softmax probabilities (N×C, float32, rows sum to 1) in eval mode."""
        ...

    def embed(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        """Penultimate activations (the input of the final linear layer), N×D float32."""
        ...

    def error(self, split: str = "test") -> float:
        """Top-1 error on a whole split."""
        ...


class Schedule(Protocol):
    """A training recipe, as far as the loops read it."""

    epochs: int


@runtime_checkable
class Scheduled(Protocol):
    """A learner whose training recipe is known before it fits (progress bars count its epochs)."""

    config: Schedule


@runtime_checkable
class CountsExamples(Protocol):
    """A learner whose ``fit`` advances its progress by the examples of each minibatch (of every
    epoch) rather than once per epoch, so the bar moves within an ImageNet-size epoch; the loops
    then give the bar ``epochs × examples`` as its total. ``counts_examples`` is True."""

    counts_examples: bool


@runtime_checkable
class WarmsUp(Protocol):
    """A learner that can pay the process's one-off costs (first kernels, compilation) up front."""

    def warm_up(self) -> float:
        """Seconds the warm-up took; nothing of the learner's state changes."""
        ...


@runtime_checkable
class KeepsLosses(Protocol):
    """A learner that keeps the mean training loss of each epoch of its last fit."""

    loss_history: Sequence[torch.Tensor | float]


@runtime_checkable
class HasModule(Protocol):
    """A learner whose model is a torch module (MC dropout and BADGE read its layers)."""

    model: torch.nn.Module


@runtime_checkable
class StreamsBatches(Protocol):
    """A learner that scores a pass one inference batch at a time (the scoring pass reduces each
    batch to what the selector needs: :mod:`svpkit.selectors.reductions`)."""

    def input_batches(self, indices: np.ndarray | None = None, split: str = "train") -> Iterator[torch.Tensor]:
        """The rows ``indices`` of ``split`` as prepared model inputs, batch by batch, in order."""
        ...

    def outputs(self, x: torch.Tensor, embed: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(softmax probabilities, penultimate features when ``embed``) of one prepared batch."""
        ...


@runtime_checkable
class TorchInputs(HasModule, Protocol):
    """A learner that hands out a split's raw inputs and prepares a chunk of them for its model
    (GraNd over every parameter computes per-example gradients chunk by chunk)."""

    device: torch.device

    def inputs(self, split: str) -> tuple[torch.Tensor, torch.Tensor]: ...

    def prepare(self, x: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class LearnerOptions:
    """Per-run choices that are not part of a model's identity."""

    seed: int = 0
    device: str = "auto"
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    deterministic: bool = False
    """Ask PyTorch for deterministic kernels (svpkit.runtime.use_deterministic_algorithms); matters on GPU only."""


class Tracker(Protocol):
    """Where a run's params, tags, metrics and artifacts go: an MLflow run
    (:class:`svpkit.tracking.writer.MlflowTracker`), memory (``track=False``) or nowhere (ranks
    other than 0)."""

    state_extra: dict[str, Any]
    """Merged into every saved state (the run's invocation and data digest, for ``resume``)."""

    @property
    def run_id(self) -> str | None:
        """The MLflow run's id (None or empty: not an MLflow run)."""
        ...

    @property
    def experiment_id(self) -> str | None: ...

    def log_params(self, params: Mapping[str, object]) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_array(self, path: str, array: np.ndarray) -> None: ...

    def log_json(self, path: str, obj: object) -> None: ...

    def log_figure(self, figure: Figure, path: str) -> None: ...

    def log_text(self, path: str, text: str) -> None: ...

    def log_dataset(self, dataset: Dataset, context: str = "training") -> None:
        """Record the data set's name and content digest as the run's input."""
        ...

    def save_state(self, state: dict[str, Any]) -> None:
        """Persist resumable state after a finished round/stage (atomically)."""
        ...
