"""The embedding store: a pool embedded once per key, kept on disk memory-mapped, resumable.

A pretrained backbone (svpkit.backbones) turns each example into a fixed vector; computing it is
the expensive part, so it is done once per :class:`StoreKey` — the backbone's name, the digest of
its weights, its preprocessing, the data set's digest and the stored dtype — and reused by every
later round, run, seed and command. Each key has its own directory under the cache
(``$SVPKIT_CACHE``, default ``~/.cache/svpkit``)::

    embeddings/<key digest>/key.json          what the key is made of
    embeddings/<key digest>/<split>.npy       N×D fp16 or fp32 (``np.lib.format.open_memmap``)
    embeddings/<key digest>/<split>.rows      how many leading rows are complete (written after each chunk)
    embeddings/<key digest>/<split>.lock      held by the one process filling the split
    embeddings/<key digest>/<split>.<a>-<b>.rows   under ``torchrun``: the completed rows of the
                                              rank filling rows [a, b) (:meth:`EmbeddingStore.fill_range`)

A pass writes its chunks in order and records the completed rows after each one (file replaced
atomically), so a killed pass continues from the first row it had not finished. Under ``torchrun``
each rank fills its own contiguous rows of the same memory-mapped file (created once, under a
lock), resumable per range; the split is marked complete once every range is. Stores of
different keys never share a directory, so a different backbone, weights file, preprocessing or
data set can never read another's vectors.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from svpkit.errors import DataError
from svpkit.runtime import cache_dir

DTYPES = ("float16", "float32")
Batches = Callable[[int], Iterator[np.ndarray]]
"""``batches(start)``: the embeddings of the rows ``start, start+1, ...`` of a split, batch by batch, in order."""
RangeBatches = Callable[[int, int], Iterator[np.ndarray]]
"""``batches(start, stop)``: the embeddings of the rows ``start … stop − 1``, batch by batch, in order."""


def file_digest(path: Path, chunk: int = 1 << 20) -> str:
    """The sha256 of a file (hex)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class StoreKey:
    """What a stored embedding depends on; its :attr:`digest` names the store's directory."""

    backbone: str
    weights: str
    """The sha256 of the weights file (or another stable identity of the weights)."""
    preprocessing: str
    """The preprocessing as canonical text (``size=96,scale=[-1,1]``)."""
    dataset: str
    """The data set's digest (svpkit.data.base.Dataset.digest)."""
    dtype: str = "float16"

    @property
    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def label(self) -> str:
        """How runs record the store: ``<backbone>:<digest>``."""
        return f"{self.backbone}:{self.digest}"


class EmbeddingStore:
    """The stored embeddings of one key (module docstring)."""

    def __init__(self, key: StoreKey, root: Path | None = None) -> None:
        if key.dtype not in DTYPES:
            raise DataError(f"embedding store dtype must be one of {', '.join(DTYPES)}, got {key.dtype!r}")
        self.key = key
        self.dir = (root or cache_dir()) / "embeddings" / key.digest

    def _array(self, split: str) -> Path:
        return self.dir / f"{split}.npy"

    def _marker(self, split: str, rows: tuple[int, int] | None = None) -> Path:
        return self.dir / (f"{split}.rows" if rows is None else f"{split}.{rows[0]}-{rows[1]}.rows")

    def done_rows(self, split: str, rows: tuple[int, int] | None = None) -> int:
        """How many leading rows of ``split`` are complete (0: none stored); of the range ``rows``:
        the first row of it not yet stored (its start: none)."""
        try:
            return int(self._marker(split, rows).read_text().strip() or 0)
        except (OSError, ValueError):
            return 0 if rows is None else rows[0]

    def complete(self, split: str, rows: int) -> bool:
        return self._array(split).exists() and self.done_rows(split) >= rows

    def open(self, split: str, rows: int, dim: int) -> np.memmap:
        """The split's array, memory-mapped: created when missing (or of another shape), else reopened."""
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            _write_atomic(key_file, json.dumps(asdict(self.key), indent=1, sort_keys=True))
        path = self._array(split)
        if path.exists():
            array = np.load(path, mmap_mode="r+")
            if array.shape == (rows, dim) and array.dtype == np.dtype(self.key.dtype):
                return array
            for marker in self.dir.glob(f"{split}.*rows"):  # the whole split's and every range's
                marker.unlink(missing_ok=True)
        return np.lib.format.open_memmap(path, mode="w+", dtype=self.key.dtype, shape=(rows, dim))

    def fill(
        self, split: str, rows: int, dim: int, batches: Batches, advance: Callable[[int], None] | None = None
    ) -> np.ndarray:
        """The split's embeddings (read-only memory map), computing only the rows not yet stored:
        ``batches(start)`` is called once, from the first missing row, and only when one is missing.
        One process fills a split at a time (a lock file beside it); another waits, then reads."""
        if self.complete(split, rows):
            return self.read(split)
        self.dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.dir / f"{split}.lock"):
            if self.complete(split, rows):  # filled while this process waited
                return self.read(split)
            return self._fill(split, rows, dim, batches, advance)

    def _fill(
        self, split: str, rows: int, dim: int, batches: Batches, advance: Callable[[int], None] | None
    ) -> np.ndarray:
        self._write_rows(self.open(split, rows, dim), split, (0, rows), lambda start, _stop: batches(start), advance)
        return self.read(split)

    def fill_range(
        self,
        split: str,
        rows: int,
        dim: int,
        span: tuple[int, int],
        batches: RangeBatches,
        advance: Callable[[int], None] | None = None,
    ) -> None:
        """Fill rows ``span`` = [a, b) of the split's ``rows``×``dim`` array (one ``torchrun`` rank's
        share), resuming after the last complete chunk of an earlier pass over the same range. The
        array is created once whichever rank comes first; call :meth:`finish` when every range is."""
        if self.complete(split, rows):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        with _locked(self.dir / f"{split}.create.lock"):
            array = self.open(split, rows, dim)
        with _locked(self.dir / f"{split}.{span[0]}-{span[1]}.lock"):
            self._write_rows(array, split, span, batches, advance, ranged=True)

    def finish(self, split: str, rows: int) -> None:
        """Mark the split complete (every range of :meth:`fill_range` is)."""
        _write_atomic(self._marker(split), str(rows))

    def _write_rows(
        self,
        array: np.memmap,
        split: str,
        span: tuple[int, int],
        batches: RangeBatches,
        advance: Callable[[int], None] | None,
        ranged: bool = False,
    ) -> None:
        lo, hi = span
        marker = self._marker(split, span if ranged else None)
        row = min(max(self.done_rows(split, span if ranged else None), lo), hi)
        if ranged and self.done_rows(split) > row:  # a one-process pass got this far before
            row = min(self.done_rows(split), hi)
        if advance is not None and row > lo:
            advance(row - lo)
        if row < hi:
            for batch in batches(row, hi):
                stop = row + batch.shape[0]
                if stop > hi or batch.shape[1:] != (array.shape[1],):
                    raise DataError(
                        f"embedding pass gave a batch of shape {batch.shape} at row {row} of {lo}-{hi}×{array.shape[1]}"
                    )
                array[row:stop] = batch
                array.flush()
                row = stop
                _write_atomic(marker, str(row))
                if advance is not None:
                    advance(batch.shape[0])
        if row < hi:
            raise DataError(f"embedding pass of {split} stopped at row {row} of {hi}")

    def read(self, split: str) -> np.ndarray:
        return np.load(self._array(split), mmap_mode="r")


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` for the block (``fcntl``; none where it does not exist)."""
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
