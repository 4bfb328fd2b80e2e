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
from typing import TYPE_CHECKING

import numpy as np
import torch

from svpkit.models.base import TrainConfig
from svpkit.progress import Advance
from svpkit.protocols import TrainObserver

if TYPE_CHECKING:
    from svpkit.learners.torch import TorchLearner

Step = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
"""``step(batch)`` for a minibatch of training indices: (the loss to back-propagate, the
minibatch's summed per-example loss over this process's examples, detached)."""


@dataclass(frozen=True)
class Fit:
    """What one fit trains: ``x``/``y`` are the whole training split (``x`` on the device or in
    pinned host memory), ``indices`` the labeled training indices on the device; ``losses`` is the
    learner's ``loss_history``, filled epoch by epoch (progress callbacks read the last one)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor
    observers: Sequence[TrainObserver]
    losses: list[torch.Tensor]


def start_fit(
    learner: TorchLearner, model: torch.nn.Module, indices: np.ndarray, observers: Sequence[TrainObserver]
) -> Fit:
    """Make ``model`` the learner's model and set up its training on ``indices``."""
    learner.model = model
    x_all, y_all = learner.inputs("train")
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64), device=learner.device)
    for obs in observers:
        obs.on_fit_start(len(y_all), learner.device)
    learner.loss_history = []
    return Fit(model, learner.new_optimizer(model), x_all, y_all, idx, tuple(observers), learner.loss_history)


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
        if reduce_loss is not None:
            reduce_loss(loss_sum)
        history.append(loss_sum / max(n, 1))
        if progress is not None:
            progress(1)
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
