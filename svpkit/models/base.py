"""Model specs: what a model is, not how it is trained.

A :class:`ModelSpec` names a model and what a *learner* for a data set needs to build it (a
learner trains from scratch on a set of training indices, scores examples, exposes penultimate
activations and measures error: :class:`svpkit.protocols.Learner`;
:func:`svpkit.learners.make_learner` makes one). Torch models only provide ``build`` (an
``nn.Module`` factory); the built-in :class:`svpkit.learners.torch.TorchLearner` does the rest.
Other families (fastText) provide their own ``learner`` factory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch

from svpkit.options import ModelOption

if TYPE_CHECKING:
    from svpkit.data.base import Dataset
    from svpkit.protocols import Learner, LearnerOptions


@dataclass(frozen=True)
class TrainConfig:
    """SGD with momentum, weight decay and step decays (the paper's recipe).

    ``milestones`` are epochs at which the learning rate is multiplied by ``gamma``;
    ``warmup_epochs`` run at ``warmup_lr`` first (ResNet110/164 in the paper).
    """

    epochs: int
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[int, ...] = ()
    gamma: float = 0.1
    warmup_epochs: int = 0
    warmup_lr: float = 0.01
    nesterov: bool = False

    def with_epochs(self, epochs: int) -> TrainConfig:
        """The same schedule stretched or shrunk to ``epochs`` ("fewer epochs" proxies)."""
        if epochs == self.epochs:
            return self
        scale = epochs / self.epochs
        milestones = tuple(sorted({max(1, round(m * scale)) for m in self.milestones if round(m * scale) < epochs}))
        warmup = min(self.warmup_epochs, max(0, epochs - 1))
        return replace(self, epochs=epochs, milestones=milestones, warmup_epochs=warmup)

    def lr_at(self, epoch: int) -> float:
        if epoch < self.warmup_epochs:
            return self.warmup_lr
        return self.lr * self.gamma ** sum(epoch >= m for m in self.milestones)


@dataclass(frozen=True)
class ModelSpec:
    """A registered model.

    ``build(num_classes, input_shape)`` returns a fresh ``torch.nn.Module`` whose last
    ``nn.Linear`` is the classifier (its input is the embedding). ``encode(dataset, split, options)``
    turns a split's raw inputs into tensors for models whose inputs need it (characters for VDCNN);
    ``options`` holds the model's own ``options`` (defaults with the run's values applied).
    ``learner(spec, dataset, options)`` replaces the torch learner entirely (fastText).
    ``options`` declares what a run may set with ``--proxy-options``/``--target-options``
    (:mod:`svpkit.models.options`); torch models also take the torch learner's options
    (:func:`svpkit.learners.options.option_specs`).
    """

    name: str
    family: str
    train: TrainConfig
    build: Callable[[int, tuple[int, ...]], torch.nn.Module] | None = None
    learner: Callable[[ModelSpec, Dataset, LearnerOptions], Learner] | None = None
    modalities: tuple[str, ...] = ("image",)
    description: str = ""
    encode: Callable[[Dataset, str, Mapping[str, object]], torch.Tensor] | None = None
    example_input_shape: tuple[int, ...] | None = None
    example_num_classes: int = 10
    options: tuple[ModelOption, ...] = ()
    weights: Callable[[torch.nn.Module, Mapping[str, object]], None] | None = None
    """Sets a freshly built module's weights from the model's own options (pretrained weights, the
    timm plugin's ``pretrained=``); None: the builder's initialisation stays."""
    check: Callable[[Mapping[str, object]], None] | None = None
    """Checks the model's given options before any run exists (a weights file that must be there)."""

    def num_parameters(self, num_classes: int | None = None, input_shape: tuple[int, ...] | None = None) -> int | None:
        if self.build is None:
            return None
        shape = input_shape or self.example_input_shape
        if shape is None:
            return None
        module = self.build(num_classes or self.example_num_classes, shape)
        return sum(p.numel() for p in module.parameters())


def final_linear(module: torch.nn.Module) -> torch.nn.Linear:
    """The classifier: the last ``nn.Linear`` registered in the module tree."""
    last = None
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            last = m
    if last is None:
        raise TypeError(f"{type(module).__name__} has no nn.Linear classifier to embed from")
    return last
