"""Data set objects shared by loaders, learners and loops.

A :class:`Dataset` holds a train and a test :class:`Split`. Indices everywhere in svpkit refer to
positions in the *original order* of the training split, so selected indices stay meaningful
across runs, models and machines.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
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

    def limited(self, train: int | None = None, test: int | None = None) -> Dataset:
        """A smaller copy for quick runs: the first ``train`` training examples (so indices keep
        their original meaning) and a class-stratified, seeded sample of ``test`` test examples
        (some test files are ordered by class)."""
        from svpkit.errors import ConfigError

        if not train and not test:
            return self
        tr, te = self.train, self.test
        if train:
            if train > len(tr):
                raise ConfigError(f"train limit {train} is larger than the {len(tr)} training examples")
            tr = _take(tr, np.arange(train))
        if test and test < len(te):
            rng = np.random.default_rng(0)
            order = rng.permutation(len(te))
            labels = te.y.numpy()[order]
            # Round-robin over classes in a random order keeps the class mix of the full split.
            ranks = np.empty(len(te), dtype=np.int64)
            for c in np.unique(labels):
                members = np.flatnonzero(labels == c)
                ranks[members] = np.arange(members.size) * 1000003 // members.size
            keep = np.sort(order[np.argsort(ranks, kind="stable")[:test]])
            te = _take(te, keep)
        suffix = f"[train={len(tr)},test={len(te)}]"
        return replace(self, name=self.name, train=tr, test=te, source=self.source + suffix, extra={}, _digest=None)

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


def _take(split: Split, idx: np.ndarray) -> Split:
    if isinstance(split.x, torch.Tensor):
        x: Any = split.x[torch.from_numpy(idx)]
    else:
        x = [split.x[i] for i in idx]
    return Split(x, split.y[torch.from_numpy(idx)])


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
