"""Learners: what trains a model on a set of training indices and scores examples with it.

:func:`make_learner` is how loops get a :class:`svpkit.protocols.Learner` for a model spec: the
spec's own ``learner`` factory (fastText) or the torch learner (:mod:`svpkit.learners.torch`, one
process; :mod:`svpkit.learners.torch_ddp`, its fit under ``torchrun``; both run the epoch loop of
:mod:`svpkit.learners.epochs`). :mod:`svpkit.learners.options` says which options a run may set
for a model (its own and, for torch models, the torch learner's); :mod:`svpkit.learners.acceleration`
what ``amp`` and ``compile`` turn on per device.
"""

from __future__ import annotations

from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.learners.torch import TorchLearner
from svpkit.models.base import ModelSpec
from svpkit.protocols import Learner, LearnerOptions


def make_learner(spec: ModelSpec, dataset: Dataset, options: LearnerOptions) -> Learner:
    """A learner of ``spec`` for ``dataset``; a ConfigError when the model cannot read its inputs."""
    if dataset.modality not in spec.modalities:
        raise ConfigError(
            f"model {spec.name!r} takes {'/'.join(spec.modalities)} inputs but data set "
            f"{dataset.name!r} is {dataset.modality}"
        )
    if spec.learner is not None:
        return spec.learner(spec, dataset, options)
    return TorchLearner(spec, dataset, options)
