"""The epoch loop both torch fits share: one process (:class:`svpkit.learners.torch.TorchLearner`)
and DistributedDataParallel under ``torchrun`` (:func:`svpkit.learners.torch_ddp.fit_ddp`).

A fit starts with :func:`start_fit` (the learner's new model, the training split's tensors, the
labeled indices on the device, observers told, the optimizer), then :func:`run_epochs`: per epoch
the schedule's learning rate, one ``randperm`` of the labeled indices on the device, then one SGD
step (:func:`sgd_step`) per minibatch on the loss the fit's ``step`` computes. Losses accumulate
on the device: no host synchronisation inside the loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch

from svpkit.models.base import TrainConfig
from svpkit.progress import Advance
from svpkit.protocols import LearnerOptions, TrainObserver


class FitHost(Protocol):
    """What the fit functions need of a learner (:class:`~svpkit.learners.torch.TorchLearner`):
    its device, seed and recipe, fresh models and optimizers, and its inputs."""

    device: torch.device
    options: LearnerOptions
    config: TrainConfig

    def new_model(self) -> torch.nn.Module: ...

    def new_optimizer(self, model: torch.nn.Module) -> torch.optim.Optimizer: ...

    def inputs(self, split: str) -> tuple[torch.Tensor, torch.Tensor]: ...

    def batch_inputs(
        self, x_all: torch.Tensor, idx: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor: ...

    def autocast(self) -> AbstractContextManager[Any]: ...


@dataclass(frozen=True)
class FitResult:
    """What a fit produced: the trained model, each epoch's mean training loss, its timings."""

    model: torch.nn.Module
    losses: list[torch.Tensor]
    timings: dict[str, float]


Step = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``step(batch)`` for a minibatch of training indices: (the loss to back-propagate, the
minibatch's summed per-example loss over this process's examples, detached)."""


@dataclass(frozen=True)
class Fit:
    """What one fit trains: ``x``/``y`` are the whole training split (``x`` on the device or in
    pinned host memory), ``indices`` the labeled training indices on the device; ``losses`` is
    filled epoch by epoch (:func:`run_epochs`)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor
    observers: Sequence[TrainObserver]
    losses: list[torch.Tensor]


def start_fit(host: FitHost, model: torch.nn.Module, indices: np.ndarray, observers: Sequence[TrainObserver]) -> Fit:
    """Set up the training of ``model`` on ``indices`` (the learner's state is not touched)."""
    x_all, y_all = host.inputs("train")
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=host.device)
    for obs in observers:
        obs.on_fit_start(len(y_all), host.device)
    return Fit(model, host.new_optimizer(model), x_all, y_all, idx, tuple(observers), [])


def sgd_step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def run_epochs(
    fit: Fit,
    config: TrainConfig,
    generator: torch.Generator,
    step: Step,
    progress: Advance | None = None,
    around: Callable[[torch.Tensor], AbstractContextManager[None]] | None = None,
    reduce_loss: Callable[[torch.Tensor], object] | None = None,
) -> list[torch.Tensor]:
    """Train ``config.epochs`` epochs; returns each epoch's mean training loss (device scalars).

    ``generator`` draws the epoch permutations (the same on every rank under DDP). ``around(batch)``
    wraps a whole minibatch, SGD step included (timing the first compiled step); ``reduce_loss``
    turns an epoch's summed loss over this process's examples into the sum over all, in place.
    """
    n = fit.indices.numel()
    device = fit.indices.device
    history = fit.losses
    for epoch in range(config.epochs):
        for group in fit.optimizer.param_groups:
            group["lr"] = config.lr_at(epoch)
        order = fit.indices[torch.randperm(n, device=device, generator=generator)]
        loss_sum = torch.zeros((), device=device)
        for batch in order.split(config.batch_size):
            with around(batch) if around is not None else nullcontext():
                loss, total = step(batch)
                sgd_step(fit.optimizer, loss)
                loss_sum += total
            if progress is not None:
                progress(int(batch.numel()))  # per example: an ImageNet-size epoch shows its progress
        if reduce_loss is not None:
            reduce_loss(loss_sum)
        history.append(loss_sum / max(n, 1))
    return history


def fit_timings(
    seconds: float, n: int, config: TrainConfig, compile_seconds: float, compiled: bool
) -> dict[str, float]:
    """A fit's ``timings``: ``steps`` and ``images`` count every minibatch of every epoch (all ranks)."""
    return {
        "train_seconds": seconds,
        "compile_seconds": compile_seconds,
        "steps": float(math.ceil(n / config.batch_size) * config.epochs),
        "images": float(n * config.epochs),
        "compiled": float(compiled),
    }
