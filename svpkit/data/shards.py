"""Sharded image pools: litdata's chunked format, read by index through torch DataLoader workers.

Layout: ``<path>/train/`` and ``<path>/val/`` (or ``test/``) are each a folder written by litdata
(``litdata.optimize`` or its ``BinaryWriter``: an ``index.json`` and ``chunk-*.bin`` files) whose
items are dicts with ``image`` (the encoded JPEG/PNG/… bytes) and ``label`` (int; −1 for an
unlabeled training example); class names are ``<path>/classes.txt`` (one per line) or else
``0..max label``. :func:`write_image_shards` writes such a folder from images and labels.

The pool is never held decoded: its splits are :class:`ShardedImages`, the streamed pool of
:mod:`svpkit.data.streaming` whose examples are litdata items (``StreamingDataset[i]``, random
access by global index) instead of files, decoded by the same function as an image folder's. So
training on any labeled subset, the seeded orders and resume are those of a streamed image folder,
and under torchrun each rank scores its own contiguous part of the pool, reading only the chunks
that hold it. Loading takes one pass for the labels (bytes read, nothing decoded) and one decoding
pass for the training images' mean/std.

Why litdata (``benchmarks/bench_shards.py``, docs/performance.md): of the engines measured on the
same pool, workers and model, it reads a shard by index (WebDataset 1.x is iterable only), its
scoring pass kept up with one file per image, and it adds a few small dependencies
(mosaicml-streaming pulls the cloud SDKs and pins numpy < 2.2). It is the optional extra
``svpkit[shards]``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svpkit.data.base import UNLABELED, Dataset, DatasetOption, DatasetSpec, Split
from svpkit.data.imagefolder import image_dataset
from svpkit.data.streaming import StreamedImages, decode_image_bytes, default_workers, image_moments
from svpkit.errors import DataError

DEFAULT_SIZE = 224
INDEX = "index.json"


def _open(folder: Path) -> Any:
    try:
        from litdata import StreamingDataset
    except ImportError:
        raise DataError("the shards data set needs litdata: pip install 'svpkit[shards]'") from None
    return StreamingDataset(str(folder))


class _ShardDecode(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Row ``i`` of a split: its item fetched by global index (litdata opened lazily, in the process
    that reads) and decoded; an undecodable image returns its error (never raises across processes)."""

    def __init__(self, folder: Path, rows: np.ndarray, size: int, labels_only: bool = False) -> None:
        self.folder, self.rows, self.size, self.labels_only = folder, rows, size, labels_only
        self.data: Any = None

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        if self.data is None:
            self.data = _open(self.folder)
        row = int(self.rows[i])
        item = self.data[row]
        if self.labels_only:
            return torch.tensor(int(item["label"])), ""
        try:
            return decode_image_bytes(item["image"], self.size, f"example {row} of {self.folder}"), ""
        except DataError as exc:
            return torch.zeros((self.size, self.size, 3), dtype=torch.uint8), str(exc)


class ShardedImages(StreamedImages):
    """The rows ``rows`` of a litdata folder, standing for their decoded uint8 NHWC tensor."""

    def __init__(self, folder: Path, rows: np.ndarray, size: int, workers: int | None = None) -> None:
        super().__init__([], size, workers)
        self.folder, self.rows = folder, np.asarray(rows, dtype=np.int64)
        self._reader: _ShardDecode | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def decoder(self, fresh: bool = True) -> torch.utils.data.Dataset:  # type: ignore[type-arg]
        """Loader workers get a fresh reader; decoding in this process reuses one."""
        if fresh:
            return _ShardDecode(self.folder, self.rows, self.size)
        if self._reader is None:
            self._reader = _ShardDecode(self.folder, self.rows, self.size)
        return self._reader

    def take(self, idx: np.ndarray) -> ShardedImages:
        return ShardedImages(self.folder, self.rows[np.asarray(idx, dtype=np.int64)], self.size, self.workers)

    def labels(self) -> torch.Tensor:
        """Every row's label (a pass that reads the items and decodes nothing)."""
        reader = _ShardDecode(self.folder, self.rows, self.size, labels_only=True)
        loader = torch.utils.data.DataLoader(reader, batch_size=1024, num_workers=_workers(self.workers, len(self)))
        parts = [labels for labels, _ in loader]
        return torch.cat(parts).to(torch.int64) if parts else torch.zeros(0, dtype=torch.int64)

    def digest_bytes(self) -> bytes:
        """The folder's litdata index (chunk names, sizes) and the rows, not the pixels."""
        h = hashlib.sha256((self.folder / INDEX).read_bytes())
        h.update(self.rows.tobytes())
        return h.digest()


def _workers(workers: int, batches: int) -> int:
    return min(workers, batches) if min(workers, batches) > 1 else 0


def write_image_shards(images: Iterable[tuple[bytes | Path, int]], out: str | Path, chunk_items: int = 1000) -> Path:
    """A litdata folder at ``out`` of ``(encoded image or its file, label)`` items, ``chunk_items``
    per chunk: what the ``shards`` data set reads as one split."""
    try:
        from litdata.streaming.writer import BinaryWriter
    except ImportError:
        raise DataError("writing shards needs litdata: pip install 'svpkit[shards]'") from None
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    writer = BinaryWriter(str(out), chunk_size=chunk_items)
    for i, (image, label) in enumerate(images):
        data = image.read_bytes() if isinstance(image, Path) else bytes(image)
        writer[i] = {"image": data, "label": int(label)}
    writer.done()
    writer.merge()
    return out


def _split(root: Path, names: tuple[str, ...]) -> Path | None:
    return next((root / n for n in names if (root / n / INDEX).is_file()), None)


def load_shards(path: str | Path | None = None, size: int = DEFAULT_SIZE, workers: int | None = None) -> Dataset:
    """Read the litdata folders ``train/`` and ``val/`` (or ``test/``) under ``path`` (module docstring)."""
    root = Path(path).expanduser() if path else None
    train_dir = _split(root, ("train",)) if root is not None and root.is_dir() else None
    if root is None or train_dir is None:
        raise DataError(f"shards needs a folder with train/{INDEX} (litdata chunks), got {path!r}")
    count = len(_open(train_dir))
    train_x = ShardedImages(train_dir, np.arange(count), size, default_workers() if workers is None else workers)
    train = Split(train_x, train_x.labels(), [f"train/{i}" for i in range(count)])
    test_dir = _split(root, ("val", "test"))
    if test_dir is not None:
        test_x = ShardedImages(test_dir, np.arange(len(_open(test_dir))), size, train_x.workers)
        test = Split(test_x, test_x.labels(), [f"{test_dir.name}/{i}" for i in range(len(test_x))])
    else:
        test = Split(train_x.take(np.arange(0)), train.y[:0], [])
    classes = _classes(root, torch.cat([train.y, test.y]))
    mean, std = image_moments(train_x.batches(None, 256))  # every training image, as an image folder's
    source = f"{root} (litdata shards at {size}x{size}, stream)"
    return image_dataset("shards", train, test, classes, (mean, std), source, "stream")


def _classes(root: Path, labels: torch.Tensor) -> list[str]:
    file = root / "classes.txt"
    if file.is_file():
        classes = [c.strip() for c in file.read_text(encoding="utf-8").splitlines() if c.strip()]
    else:
        classes = [str(c) for c in range(int(labels.max()) + 1 if labels.numel() else 0)]
    bad = labels[(labels < UNLABELED) | (labels >= len(classes))]
    if bad.numel() or not classes:
        raise DataError(
            f"{root}: labels must be -1 (unlabeled) or 0..{len(classes) - 1} (classes.txt), got {bad[:5].tolist()}"
        )
    return classes


SPEC = DatasetSpec(
    name="shards",
    load=load_shards,
    description="litdata shards train/ and val/ of {image: encoded bytes, label: int} items, streamed (svpkit[shards])",
    needs_path=True,
    modality="image",
    options=(
        DatasetOption("size", int, DEFAULT_SIZE, "side in pixels: shorter side resized, centre-cropped", minimum=8),
        DatasetOption(
            "workers", int, None, "DataLoader worker processes that decode (default: cores, at most 8)", minimum=0
        ),
    ),
)
