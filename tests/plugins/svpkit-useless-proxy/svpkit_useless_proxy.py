"""A deliberately useless proxy for the agreement tests: its scores are random, whatever it was fit on.

``useless_proxy`` reads vector data sets (digits). ``fit`` learns nothing; ``predict_proba`` and
``embed`` draw from a generator seeded by the run's seed and the rows asked for, so a run is
reproducible while its picks carry no information about the target's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from svpkit.hookspecs import hookimpl
from svpkit.models.base import ModelSpec, TrainConfig

EMBEDDING_DIM = 8


class UselessLearner:
    def __init__(self, spec: ModelSpec, dataset: Any, options: Any) -> None:
        self.dataset = dataset
        self.seed = int(options.seed)
        self.device = torch.device("cpu")
        self.config = spec.train

    def fit(self, indices: np.ndarray, observers: Sequence[Any] = (), progress: Any = None) -> None:
        self.seed += int(np.asarray(indices).sum()) % 1_000_003  # a fresh draw per labeled set

    def _rows(self, indices: np.ndarray | None, split: str, width: int) -> torch.Tensor:
        count = len(getattr(self.dataset, split)) if indices is None else len(indices)
        generator = torch.Generator().manual_seed(self.seed * 31 + width)
        return torch.rand(count, width, generator=generator)

    def predict_proba(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        return torch.softmax(4.0 * self._rows(indices, split, self.dataset.num_classes), dim=1)

    def embed(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        return self._rows(indices, split, EMBEDDING_DIM)

    def error(self, split: str = "test") -> float:
        labels = torch.as_tensor(np.asarray(getattr(self.dataset, split).y))
        guesses = self.predict_proba(None, split).argmax(dim=1)
        return float((guesses != labels).float().mean())


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    register(
        ModelSpec(
            name="useless_proxy",
            family="random",
            train=TrainConfig(epochs=1),
            learner=UselessLearner,
            modalities=("vector",),
            description="test plugin: random probabilities and embeddings (a proxy that agrees with nothing)",
        )
    )
