"""svpkit plugin: fastText (Joulin et al. 2017) as a proxy for text data sets.

fastText trains in C++ on a text file, so this plugin provides its own learner instead of a torch
module (``ModelSpec.learner``). The paper's settings are the defaults (reference:
``svp/amazon/fasttext.py``): word bigrams (``wordNgrams=2``), 10-dimensional vectors, 5 epochs,
learning rate 0.05, ``minCount=1`` and 10,000,000 hash buckets. Change them per run with
``--proxy-options``/``--target-options`` (``dim=50,word_ngrams=1``; names in :data:`OPTIONS`) or
``LearnerOptions.extra`` in Python; epochs come from ``--proxy-epochs``/``LearnerOptions.epochs``.
Text is normalised as the reference's shell pipeline does.

Limits: ``fit`` cannot report training minibatches, so training-dynamics selectors (forgetting
events) need a torch learner; asking for them is a :class:`~svpkit.errors.ConfigError`. Training
runs on one thread by default so that a seed gives the same model (fastText's Hogwild threads are
not deterministic).
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

from svpkit.data.base import Dataset
from svpkit.errors import ConfigError
from svpkit.hookspecs import hookimpl
from svpkit.learners.options import resolve_model_options
from svpkit.models.base import ModelSpec, TrainConfig
from svpkit.models.options import ModelOption
from svpkit.protocols import LearnerOptions, TrainObserver

DEFAULTS: dict[str, Any] = {
    "dim": 10,
    "word_ngrams": 2,
    "min_count": 1,
    "bucket": 10_000_000,
    "lr": 0.05,
    "epochs": 5,
    "thread": 1,
}
OPTIONS = (
    ModelOption("dim", int, DEFAULTS["dim"], "size of word vectors (the embedding k-center uses)", minimum=1),
    ModelOption("word_ngrams", int, DEFAULTS["word_ngrams"], "max length of word n-grams (2 = bigrams)", minimum=1),
    ModelOption("min_count", int, DEFAULTS["min_count"], "minimal number of word occurrences", minimum=1),
    ModelOption("bucket", int, DEFAULTS["bucket"], "hash buckets for n-grams", minimum=1),
    ModelOption("lr", float, DEFAULTS["lr"], "learning rate", minimum=0.0),
    ModelOption("thread", int, DEFAULTS["thread"], "training threads (more than 1 is not deterministic)", minimum=1),
)
LABEL = "__label__"

_BREAK = re.compile(r"<br\s*/?>")
_CHARS = str.maketrans({"'": " ' ", '"': "", ";": " ", ":": " ", **{c: f" {c} " for c in ".,()!?"}})
CHUNK = 65_536
"""Texts normalised at a time: scoring a 3.6M-review pool never holds a second copy of its strings."""


def normalize(text: str) -> str:
    """Lower-case and split off punctuation (the reference's ``NORMALIZE_TEXT``); one line.

    The reference's ``sed`` steps, in one pass: ``<br />`` → space; ``'`` → `` ' ``; ``"``
    dropped; ``. , ( ) ! ?`` spaced; ``; :`` → space; runs of whitespace → one space, trimmed.
    """
    text = text.lower()
    if "<br" in text:
        text = _BREAK.sub(" ", text)
    return " ".join(text.translate(_CHARS).split())


class FastTextLearner:
    """The :class:`svpkit.models.base.Learner` protocol for fastText (CPU only)."""

    def __init__(self, spec: ModelSpec, dataset: Dataset, options: LearnerOptions) -> None:
        if dataset.modality != "text" or isinstance(dataset.train.x, torch.Tensor):
            raise ConfigError(f"fastText reads text data sets; {dataset.name!r} is {dataset.modality}")
        given = resolve_model_options(spec, options.extra, f"options of {spec.name}")
        self.spec = spec
        self.dataset = dataset
        self.options = options
        self.device = torch.device("cpu")
        params = {**DEFAULTS, **given}
        if options.epochs is not None:
            params["epochs"] = options.epochs
        if options.lr is not None:
            params["lr"] = options.lr
        self.params = params
        self.config = replace(spec.train, epochs=int(params["epochs"]), lr=float(params["lr"]))
        self.model: Any = None
        self._column: dict[str, int] = {}

    def _chunks(self, indices: np.ndarray | None, split: str) -> Iterator[list[str]]:
        """The normalised texts of ``indices`` (all of ``split`` for None), :data:`CHUNK` at a time."""
        texts = getattr(self.dataset, split).x
        n = len(texts) if indices is None else len(indices)
        for start in range(0, n, CHUNK):
            if indices is None:
                part = texts[start : start + CHUNK]
            else:
                part = [texts[i] for i in indices[start : start + CHUNK]]
            yield [normalize(t) for t in part]

    def fit(
        self,
        indices: np.ndarray,
        observers: Sequence[TrainObserver] = (),
        progress: Callable[[int], None] | None = None,
    ) -> None:
        import fasttext

        if observers:
            raise ConfigError(
                "fastText trains in C++ and cannot report its training minibatches; "
                "training-dynamics selectors (forgetting events) need a torch model"
            )
        indices = np.asarray(indices, dtype=np.int64)
        if indices.size == 0:
            raise ConfigError("fastText needs at least one training example")
        labels = self.dataset.train.y.numpy()
        # The reference shuffles the labeled examples before writing fastText's input file.
        order = np.random.default_rng(self.options.seed).permutation(indices)
        p = self.params
        with tempfile.TemporaryDirectory(prefix="svpkit-fasttext-") as tmp:
            file = os.path.join(tmp, "train.txt")
            with open(file, "w", encoding="utf-8") as fh:
                for start, part in zip(range(0, order.size, CHUNK), self._chunks(order, "train")):
                    fh.writelines(f"{LABEL}{y} {t}\n" for y, t in zip(labels[order[start : start + CHUNK]], part))
            self.model = fasttext.train_supervised(
                input=file,
                dim=int(p["dim"]),
                lr=float(p["lr"]),
                wordNgrams=int(p["word_ngrams"]),
                minCount=int(p["min_count"]),
                bucket=int(p["bucket"]),
                epoch=int(p["epochs"]),
                thread=int(p["thread"]),
                seed=int(self.options.seed) & 0x7FFFFFFF,
                verbose=0,
            )
        self._column = {label: int(label[len(LABEL) :]) for label in self.model.get_labels()}
        if progress is not None:
            progress(int(p["epochs"]))

    def _indices(self, indices: np.ndarray | None) -> np.ndarray | None:
        if self.model is None:
            raise RuntimeError("fit() must run before inference")
        return None if indices is None else np.asarray(indices, dtype=np.int64)

    def predict_proba(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        rows = [self._probabilities(part) for part in self._chunks(self._indices(indices), split)]
        if not rows:
            return torch.zeros((0, self.dataset.num_classes))
        return torch.from_numpy(np.concatenate(rows))

    def _probabilities(self, texts: list[str]) -> np.ndarray:
        """Class probabilities of normalised texts (float32 rows summing to 1)."""
        probs = np.zeros((len(texts), self.dataset.num_classes), dtype=np.float64)
        labels, scores = self.model.f.multilinePredict([t + "\n" for t in texts], -1, 0.0, "strict")
        width = len(labels[0]) if labels else 0
        if all(len(row) == width for row in labels):  # every row scores every label: one scatter
            column = self._column
            flat = np.fromiter((column[name] for row in labels for name in row), np.int64, len(labels) * width)
            np.put_along_axis(probs, flat.reshape(len(labels), width), np.array(scores, dtype=np.float64), axis=1)
        else:
            for row, (names, values) in enumerate(zip(labels, scores)):
                probs[row, [self._column[name] for name in names]] = values
        # fastText's softmax output can sum slightly above 1 (and classes absent from the labeled
        # set get no score at all): renormalise so every row is a distribution.
        sums = probs.sum(axis=1, keepdims=True)
        empty = sums[:, 0] <= 0
        probs[empty] = 1.0 / probs.shape[1]
        sums[empty] = 1.0
        return (probs / sums).astype(np.float32)

    def embed(self, indices: np.ndarray | None = None, split: str = "train") -> torch.Tensor:
        """The hidden layer: the average of the text's word and bigram vectors (the input of
        fastText's linear classifier)."""
        vector = self.model.get_sentence_vector
        rows = [
            np.array([vector(t) for t in part], dtype=np.float32).reshape(len(part), int(self.params["dim"]))
            for part in self._chunks(self._indices(indices), split)
        ]
        return torch.from_numpy(np.concatenate(rows) if rows else np.zeros((0, int(self.params["dim"])), np.float32))

    def error(self, split: str = "test") -> float:
        probs = self.predict_proba(None, split)
        y = getattr(self.dataset, split).y
        return float((probs.argmax(1) != y).float().mean().item())


@dataclass(frozen=True)
class FastTextSpec(ModelSpec):
    """fastText's size depends on the vocabulary; the count shown is the part fixed by its settings
    (hash buckets × dim + the linear classifier for ``example_num_classes``)."""

    def num_parameters(self, num_classes: int | None = None, input_shape: tuple[int, ...] | None = None) -> int | None:
        classes = num_classes or self.example_num_classes
        dim = int(DEFAULTS["dim"])
        return int(DEFAULTS["bucket"]) * dim + dim * classes


def make_learner(spec: ModelSpec, dataset: Dataset, options: LearnerOptions) -> FastTextLearner:
    return FastTextLearner(spec, dataset, options)


SPEC = FastTextSpec(
    name="fasttext",
    family="fasttext",
    train=TrainConfig(epochs=int(DEFAULTS["epochs"]), batch_size=1, lr=float(DEFAULTS["lr"]), weight_decay=0.0),
    learner=make_learner,
    modalities=("text",),
    description="fastText: bigrams, dim 10, 5 epochs, 10M buckets (CPU; parameters exclude the data's vocabulary)",
    example_num_classes=2,
    options=OPTIONS,
)


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    register(SPEC)
