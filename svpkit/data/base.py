"""Data set objects shared by loaders, learners and loops.

A :class:`Dataset` holds a train and a test :class:`Split`. Indices everywhere in svpkit refer to
positions in the *original order* of the training split, so selected indices stay meaningful
across runs, models and machines.

Unlabeled training examples (real labeling projects, ``svpkit query``; docs/labeling.md) carry
the label :data:`UNLABELED` (−1) in ``Split.y``; the test split is always labeled (or empty: no
test error then). Every training example has a stable id (``Split.ids``: a path relative to the
data root, an id column, a row number), which labeling projects key their labels by. The
simulation loops need every training label (:meth:`Dataset.require_labels`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from svpkit.errors import ConfigError
from svpkit.options import Option, check_known, parse_options_text

UNLABELED = -1
"""``Split.y`` of a training example nobody has labeled yet."""
EXCERPT_CHARS = 80


@dataclass
class Split:
    """Examples of one split.

    ``x`` is a tensor (vectors: float N×D; images: uint8 N×H×W×C) or, for text, a list of
    strings. ``y`` holds int64 labels ``0..num_classes-1``, or :data:`UNLABELED` for a training
    example without a label. ``ids`` are the examples' stable ids (None: the index as text).
    """

    x: Any
    y: torch.Tensor
    ids: Sequence[str] | None = None

    def __len__(self) -> int:
        return int(self.y.shape[0])

    def example_ids(self) -> list[str]:
        """The stable id of every example, in order."""
        return list(self.ids) if self.ids is not None else [str(i) for i in range(len(self))]

    def example_id(self, index: int) -> str:
        return self.ids[index] if self.ids is not None else str(index)


@dataclass
class Dataset:
    """A loaded data set.

    ``modality`` says what ``x`` is: ``"vector"``, ``"image"`` (uint8 NHWC, normalised by the
    learner with ``mean``/``std`` in 0–255 units and augmented when ``augment``) or ``"text"``.

    A data set for labeling projects (a plugin's too) marks training examples without a label
    :data:`UNLABELED` in ``train.y``, gives ``train.ids`` (stable ids; else the index) and
    ``classes`` (so the classes are known before anything is labeled); its test split is labeled
    or empty.
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
    options: dict[str, object] = field(default_factory=dict)
    """The data-set options it was loaded with (declared defaults filled in; ``--dataset-options``)."""
    access: str = "memory"
    """How training, scoring and evaluation read it: ``memory`` (decoded, held in memory) or ``stream``."""
    backbone: dict[str, str] = field(default_factory=dict)
    """Seen through a pretrained backbone (``--backbone``): its name and the embedding store's key
    (settings ``backbone``, ``embedding_store``; svpkit.backbones.embed). Empty: the raw inputs."""
    load_seconds: dict[str, float] = field(default_factory=dict)
    """Seconds of the load's phases where the loader measures them (image folders: ``listing``,
    ``statistics``), logged with the data set (``data/<phase>_seconds``)."""
    _digest: str | None = field(default=None, repr=False)

    @property
    def digest(self) -> str:
        """A short content hash of the labels and inputs (training and test)."""
        if self._digest is None:
            h = hashlib.sha256()
            for split in (self.train, self.test):
                h.update(split.y.numpy().astype(np.int64).tobytes())
                if isinstance(split.x, torch.Tensor):
                    h.update(np.ascontiguousarray(split.x.numpy()).data)  # the buffer itself: no copy
                elif hasattr(split.x, "digest_bytes"):  # a streamed pool: its files, not its pixels
                    h.update(split.x.digest_bytes())
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

    @property
    def class_names(self) -> list[str]:
        """``classes``, else the labels as text (``"0"``, ``"1"``, ...)."""
        return list(self.classes) if self.classes else [str(c) for c in range(self.num_classes)]

    def labeled_indices(self) -> np.ndarray:
        """Training indices that have a label, ascending."""
        return np.flatnonzero(self.train.y.numpy() != UNLABELED).astype(np.int64)

    def unlabeled_indices(self) -> np.ndarray:
        """Training indices without a label (:data:`UNLABELED`), ascending."""
        return np.flatnonzero(self.train.y.numpy() == UNLABELED).astype(np.int64)

    def require_labels(self, what: str) -> None:
        """A ConfigError when some training examples have no label (``what`` needs them all)."""
        missing = int((self.train.y == UNLABELED).sum())
        if missing:
            raise ConfigError(
                f"{what} needs every training label, but {missing} of the {len(self.train)} training examples of "
                f"{self.name!r} have none; label them with `svpkit query` / `svpkit label` (docs/labeling.md)"
            )

    def example_text(self, index: int) -> str:
        """What an annotator looks at for training example ``index``: a text excerpt, else its id
        (an image's path relative to the data root)."""
        if self.modality == "text":
            text = " ".join(str(self.train.x[index]).split())
            return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"
        return self.train.example_id(index)

    def with_labels(self, indices: np.ndarray, labels: np.ndarray) -> Dataset:
        """A copy whose training examples ``indices`` carry ``labels`` (imported answers)."""
        y = self.train.y.clone()
        y[torch.from_numpy(np.asarray(indices, dtype=np.int64))] = torch.from_numpy(np.asarray(labels, dtype=np.int64))
        train = Split(self.train.x, y, self.train.ids)
        return replace(self, train=train, extra={}, _digest=None)

    def describe(self) -> dict[str, object]:
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


def pixel_stats(images: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (at least 1) of uint8 NHWC images, in 0–255 units."""
    pixels = images.reshape(-1, images.shape[-1]).double()
    return tuple(float(v) for v in pixels.mean(0)), tuple(float(v) for v in pixels.std(0).clamp_min(1.0))


def _take(split: Split, idx: np.ndarray) -> Split:
    if isinstance(split.x, torch.Tensor):
        x: Any = split.x[torch.from_numpy(idx)]
    elif hasattr(split.x, "take"):  # a streamed pool: the files, nothing decoded
        x = split.x.take(idx)
    else:
        x = [split.x[i] for i in idx]
    ids = None if split.ids is None else [split.ids[i] for i in idx]
    return Split(x, split.y[torch.from_numpy(idx)], ids)


@dataclass(frozen=True)
class DatasetSpec:
    """How to load a data set by name.

    ``load(path, **options)`` returns a :class:`Dataset`; ``path`` is ``None`` for data sets that
    need no files (the embedded default). Raise :class:`svpkit.errors.DataError` with one clear
    sentence when files are missing or malformed. ``modality`` is the ``Dataset.modality`` that
    ``load`` returns (``"vector/image"`` when the files decide), checked against the models before loading.
    """

    name: str
    load: Callable[..., Dataset]
    description: str = ""
    needs_path: bool = False
    modality: str = "vector"
    options: Sequence[Option] = ()
    """The keyword options ``load`` takes (``--dataset-options "size=64"``), checked before loading."""


DatasetOption = Option
"""A data set's option (:class:`svpkit.options.Option`, the machinery models and selectors use)."""
DATASET_OPTIONS_FLAG = "--dataset-options"


def resolve_dataset_options(
    spec: DatasetSpec, given: Mapping[str, object] | str | None, flag: str = DATASET_OPTIONS_FLAG
) -> dict[str, object]:
    """``given`` (the command line's text, or a mapping) checked against what ``spec`` declares:
    the typed values, in the given order (unknown names get a did-you-mean)."""
    values = parse_options_text(given, flag) if given is None or isinstance(given, str) else dict(given)
    known = {o.name: o for o in spec.options}
    out: dict[str, object] = {}
    for name, value in values.items():
        check_known(flag, f"data set {spec.name!r}", name, known)
        out[name] = known[name].convert(value, spec.name, kind="data set")
    return out


def load_with_options(spec: DatasetSpec, path: str | None, given: Mapping[str, object] | str | None = None) -> Dataset:
    """``spec.load(path, **options)`` with the options checked first; the data set records them
    (declared defaults filled in, what the loader resolved kept) in ``Dataset.options``."""
    options = resolve_dataset_options(spec, given)
    data = spec.load(path, **options) if path else spec.load(**options)
    defaults = {o.name: o.default for o in spec.options if o.default is not None}
    data.options = defaults | options | data.options
    return data
