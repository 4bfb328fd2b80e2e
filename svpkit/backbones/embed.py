"""A data set seen through a backbone: its embedded pool, computed once and kept in the store.

:func:`embedded_dataset` returns a ``vector`` data set whose inputs are the backbone's embeddings
(standardised per feature with the training split's mean and standard deviation, as a linear probe
reads them), with the same labels, ids and classes, named ``<data set>@<backbone>``. The vectors
come from the embedding store (svpkit.data.embeddings) under the key (backbone, weights sha256,
preprocessing, the inputs' digest, dtype): a pool already stored is read back without loading the
backbone at all; a pass cut short continues where it stopped. Streamed image pools are embedded in
one streamed pass (loader workers decode, the backbone runs on each batch as it arrives). Under
``torchrun`` each rank embeds its contiguous shard of each split into the same store (its own rows
of the memory-mapped file), and every rank then reads the whole split.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svpkit import parallel
from svpkit.backbones.base import Backbone, Encoder, check_reads
from svpkit.data.base import Dataset, Split
from svpkit.data.embeddings import EmbeddingStore, StoreKey
from svpkit.data.streaming import row_batches
from svpkit.progress import NullProgress, Progress

STD_FLOOR = 1e-6
CHUNK = 65_536
"""Rows per step when the standardisation statistics are summed (bounded temporaries)."""


def inputs_digest(data: Dataset) -> str:
    """A digest of the inputs alone (labels change as a project is labeled; the vectors do not)."""
    h = hashlib.sha256()
    for split in (data.train, data.test):
        x = split.x
        h.update(f"{len(split)}\0".encode())
        if isinstance(x, torch.Tensor):
            h.update(np.ascontiguousarray(x.numpy()).data)  # the buffer itself: no copy
        elif hasattr(x, "digest_bytes"):
            h.update(x.digest_bytes())
        else:
            for text in x:
                h.update(str(text).encode("utf-8") + b"\0")
    return h.hexdigest()[:16]


def store_key(data: Dataset, backbone: Backbone) -> StoreKey:
    return StoreKey(
        backbone=backbone.name,
        weights=backbone.weights_digest,
        preprocessing=backbone.preprocessing.text(),
        dataset=inputs_digest(data),
        dtype=backbone.dtype,
    )


class _LazyEncoder:
    """The backbone network, loaded on its first batch only (a stored pool never loads it)."""

    def __init__(self, backbone: Backbone, device: str) -> None:
        self.backbone, self.device = backbone, device
        self._encoder: Encoder | None = None

    def __call__(self, batch: Any) -> np.ndarray:
        if self._encoder is None:
            self._encoder = self.backbone.spec.load(self.backbone.weights_path, self.device)
        with torch.inference_mode():
            if self.backbone.spec.modality == "image":
                batch = self.backbone.preprocessing.images(batch).to(self.device)
            features = self._encoder(batch)
        return features.float().cpu().numpy().astype(self.backbone.dtype)


def _batches(split: Split, encode: _LazyEncoder, batch_size: int) -> Callable[[int, int], Iterator[np.ndarray]]:
    def batches(start: int, stop: int) -> Iterator[np.ndarray]:
        if isinstance(split.x, list):
            for i in range(start, stop, batch_size):
                yield encode(split.x[i : min(i + batch_size, stop)])
            return
        idx = None if (start, stop) == (0, len(split)) else torch.arange(start, stop)
        for images in row_batches(split.x, idx, batch_size):
            yield encode(images)

    return batches


def _from(batches: Callable[[int, int], Iterator[np.ndarray]], stop: int, start: int) -> Iterator[np.ndarray]:
    return batches(start, stop)


def embed_splits(
    data: Dataset, backbone: Backbone, device: str = "cpu", progress: Progress | None = None, root: Path | None = None
) -> tuple[StoreKey, np.ndarray, np.ndarray]:
    """(key, train, test): the stored embeddings of both splits (read-only memory maps), computed where missing."""
    check_reads(backbone.spec, data.name, data.modality)
    key = store_key(data, backbone)
    store = EmbeddingStore(key, root)
    encode = _LazyEncoder(backbone, device)
    bars = progress or NullProgress()
    out = []
    for name in ("train", "test"):
        split: Split = getattr(data, name)
        n, batches = len(split), _batches(split, encode, backbone.batch_size)
        shard = parallel.local_shard(n)
        if store.complete(name, n):
            out.append(store.read(name))
        elif shard is None:
            with bars.task(f"embedding {data.name} {name} with {backbone.name}", n) as advance:
                out.append(store.fill(name, n, backbone.spec.dim, partial(_from, batches, n), advance))
        else:  # under torchrun: each rank embeds its own rows, then every rank reads the whole split
            task = f"embedding {data.name} {name} rows {shard[0]:,}-{shard[1]:,} with {backbone.name}"
            with bars.task(task, shard[1] - shard[0]) as advance:
                store.fill_range(name, n, backbone.spec.dim, shard, batches, advance)
            parallel.barrier()
            for span in parallel.all_shards(n):  # nothing to do where the ranks share the store's file;
                store.fill_range(name, n, backbone.spec.dim, span, batches)  # else this node embeds the rest
            store.finish(name, n)
            out.append(store.read(name))
    return key, out[0], out[1]


def standardised(train: np.ndarray, test: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 tensors of both splits, standardised with the training split's per-feature statistics."""
    dim = train.shape[1]
    total, squares = np.zeros(dim), np.zeros(dim)
    for i in range(0, train.shape[0], CHUNK):
        block = np.asarray(train[i : i + CHUNK], dtype=np.float64)
        total += block.sum(0)
        squares += np.square(block).sum(0)
    n = max(train.shape[0], 1)
    mean = total / n
    std = np.sqrt(np.maximum(squares / n - mean**2, 0.0)) + STD_FLOOR
    mean32, inv32 = mean.astype(np.float32), (1.0 / std).astype(np.float32)

    def scaled(rows: np.ndarray) -> torch.Tensor:
        out = np.empty(rows.shape, dtype=np.float32)
        for i in range(0, rows.shape[0], CHUNK):
            out[i : i + CHUNK] = (np.asarray(rows[i : i + CHUNK], dtype=np.float32) - mean32) * inv32
        return torch.from_numpy(out)

    return scaled(train), scaled(test)


def embedded_dataset(
    data: Dataset, backbone: Backbone, device: str = "cpu", progress: Progress | None = None, root: Path | None = None
) -> Dataset:
    """``data`` as its backbone embeddings (module docstring)."""
    key, train, test = embed_splits(data, backbone, device, progress, root)
    x_train, x_test = standardised(train, test)
    return replace(
        data,
        name=f"{data.name}@{backbone.name}",
        train=Split(x_train, data.train.y, data.train.ids),
        test=Split(x_test, data.test.y, data.test.ids),
        modality="vector",
        input_shape=(backbone.spec.dim,),
        mean=None,
        std=None,
        augment=False,
        source=f"{data.source} via {backbone.name}",
        extra={},
        access="memory",
        backbone={"backbone": backbone.name, "embedding_store": key.label()},
        _digest=None,
    )
