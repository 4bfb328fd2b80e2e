"""Data set objects shared by loaders, learners and loops.

A :class:`Dataset` holds a train and a test :class:`Split`. Indices everywhere in svpkit refer to
positions in the *original order* of the training split, so selected indices stay meaningful
across runs, models and machines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch


@dataclass
class Split:
    """Examples of one split.

    ``x`` is a tensor (vectors: float N×D; images: uint8 N×H×W×C) or, for text, a list of
    strings. ``y`` holds int64 labels ``0..num_classes-1``.
    """

    x: Any
    y: torch.Tensor

    def __len__(self) -> int:
        return int(self.y.shape[0])


@dataclass
class Dataset:
    """A loaded data set.

    ``modality`` says what ``x`` is: ``"vector"``, ``"image"`` (uint8 NHWC, normalised by the
    learner with ``mean``/``std`` in 0–255 units and augmented when ``augment``) or ``"text"``.
    """

    name: str
    train: Split
    test: Split
    num_classes: int
    modality: str
    input_shape: tuple[int, ...]
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    augment: bool = False
    classes: list[str] | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    _digest: str | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        """A short content hash of the labels and inputs (training and test)."""
        if self._digest is None:
            h = hashlib.sha256()
            for split in (self.train, self.test):
                h.update(split.y.numpy().astype(np.int64).tobytes())
                if isinstance(split.x, torch.Tensor):
                    h.update(np.ascontiguousarray(split.x.numpy()).tobytes())
                else:
                    for text in split.x:
                        h.update(text.encode("utf-8"))
                        h.update(b"\0")
            self._digest = h.hexdigest()[:16]
        return self._digest

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "train_size": len(self.train),
            "test_size": len(self.test),
            "num_classes": self.num_classes,
            "modality": self.modality,
            "input_shape": list(self.input_shape),
            "digest": self.digest,
            "source": self.source,
        }


@dataclass(frozen=True)
class DatasetSpec:
    """How to load a data set by name.

    ``load(path, **options)`` returns a :class:`Dataset`; ``path`` is ``None`` for data sets that
    need no files (the embedded default). Raise :class:`svpkit.errors.DataError` with one clear
    sentence when files are missing or malformed.
    """

    name: str
    load: Callable[..., Dataset]
    description: str = ""
    needs_path: bool = False
    modality: str = "vector"
    options: Sequence[str] = ()
