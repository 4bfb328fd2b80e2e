"""Image pools read lazily: files decoded per batch by torch DataLoader worker processes.

:class:`StreamedImages` stands where an in-memory split holds its uint8 NHWC tensor
(``Split.x``): it has that tensor's ``shape``, ``dtype`` and ``device``, and indexing it
(``x[idx]`` with an index tensor, ``x[a:b]``) returns exactly the decoded rows, in the order asked
for, so random access by index and every seeded order of the in-memory path stay as they are;
what is never held is the decoded pool, and the file list is held compactly
(:class:`~svpkit.data.file_list.FileList`: a relative path's bytes + 8 per file). Whole passes (scoring, embedding, evaluation:
:meth:`StreamedImages.batches`) go through one ``torch.utils.data.DataLoader`` whose worker
processes decode and resize while the model runs; single batches drawn in a random order
(training on the labeled set) are decoded in the process that asks.

Why the torch DataLoader: image folders are already many files, one per example, which is what its
map-style datasets read with random access; it is part of torch (no new dependency), its workers
prefetch and its ``pin_memory`` feeds CUDA. The sharded engines (litdata, mosaicml-streaming,
WebDataset) pay off for pools packed into shards in object storage, which these folders are not.

A file that cannot be decoded never shows as a worker traceback: the worker returns its error and
the caller raises one :class:`~svpkit.errors.DataError` naming the file.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svpkit.data.file_list import FileList
from svpkit.data.stats_cache import listing_key
from svpkit.errors import DataError
from svpkit.runtime import release_free_memory

TRIM_EVERY = 8
"""Batches of a streamed pass between two returns of the C heap's free pages (runtime.release_free_memory)."""
MOMENT_ROWS = 1 << 21
"""Pixels per step of :func:`image_moments` (the int64 copies stay small whatever the batch)."""
MEMORY_FRACTION = 0.25
"""The default memory budget: this share of the machine's physical memory for a decoded pool."""


def decode_image_file(file: Path, size: int) -> torch.Tensor:
    """One image as uint8 HWC: shorter side resized to ``size``, centre-cropped to ``size``×``size``."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        image = decode_image(str(file), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError, OSError) as exc:
        raise DataError(f"cannot decode image {file} ({type(exc).__name__}: {exc})") from None
    return _fit(image, size)


def decode_image_bytes(data: bytes, size: int, name: str) -> torch.Tensor:
    """:func:`decode_image_file` for an encoded image held in memory (a shard's record); ``name``
    says which one in the error."""
    from torchvision.io import ImageReadMode, decode_image

    try:
        image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError, OSError) as exc:
        raise DataError(f"cannot decode image {name} ({type(exc).__name__}: {exc})") from None
    return _fit(image, size)


def _fit(image: torch.Tensor, size: int) -> torch.Tensor:
    """CHW → HWC, shorter side resized to ``size`` and centre-cropped (nothing to do at that size)."""
    from torchvision.transforms.v2 import functional as TF

    if image.shape[1:] != (size, size):
        image = TF.center_crop(TF.resize(image, [size], antialias=True), [size, size])
    return image.permute(1, 2, 0).contiguous()


def import_decoders() -> None:
    """Import the decoding modules here, so forked loader workers inherit them: importing
    torchvision's transforms in every worker of every pass cost more than decoding a CIFAR-size
    pool (the streamed CIFAR-10 PNG pass ran at a third of the plain pipeline's images/s)."""
    import torchvision.io  # noqa: F401
    import torchvision.transforms.v2.functional  # noqa: F401


def machine_memory() -> int:
    """Physical memory of this machine in bytes."""
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def default_workers() -> int:
    """DataLoader workers: the cores this process may use, at most 8."""
    return max(1, min(8, len(os.sched_getaffinity(0))))


class _Decode(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """What a worker does per index: decode, or return the error (never raise across processes)."""

    def __init__(self, files: Sequence[Path], size: int) -> None:
        self.files, self.size = files, size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, str]:
        try:
            return decode_image_file(self.files[i], self.size), ""
        except DataError as exc:
            return torch.zeros((self.size, self.size, 3), dtype=torch.uint8), str(exc)


def _collate(items: list[tuple[torch.Tensor, str]]) -> tuple[torch.Tensor, list[str]]:
    return torch.stack([image for image, _ in items]), [error for _, error in items]


class StreamedImages:
    """A pool of image files that behaves like its decoded uint8 NHWC tensor (module docstring)."""

    dtype = torch.uint8
    device = torch.device("cpu")

    def __init__(self, files: Sequence[Path], size: int, workers: int | None = None) -> None:
        self.files = files if isinstance(files, FileList) else FileList.of(files)
        self.size = size
        self.workers = default_workers() if workers is None else workers
        self._digest: bytes | None = None

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), self.size, self.size, 3))

    def __len__(self) -> int:
        return len(self.files)

    def numel(self) -> int:
        return int(np.prod(self.shape))

    def element_size(self) -> int:
        return 1

    def to(self, *_args: Any, **_kwargs: Any) -> StreamedImages:
        """Stays where it is: batches are decoded on the host and moved by the learner."""
        return self

    def pin_memory(self) -> StreamedImages:
        return self

    def take(self, idx: np.ndarray) -> StreamedImages:
        """The pool of the files ``idx`` (nothing decoded)."""
        return StreamedImages(self.files.take(idx), self.size, self.workers)

    def decoder(self, fresh: bool = True) -> torch.utils.data.Dataset:  # type: ignore[type-arg]
        """What decodes row ``i`` (returning its error, never raising): for loader workers (``fresh``)
        or for this process."""
        return _Decode(self.files, self.size)

    def __getitem__(self, key: Any) -> torch.Tensor:
        rows = self._rows(key)
        decode = self.decoder(fresh=False)
        images, errors = _collate([decode[i] for i in rows])
        _raise_first(errors)
        return images if len(rows) else torch.zeros((0, self.size, self.size, 3), dtype=torch.uint8)

    def _rows(self, key: Any) -> list[int]:
        if isinstance(key, slice):
            return list(range(len(self)))[key]
        if isinstance(key, int):
            raise TypeError("index a StreamedImages with a slice or an index tensor")
        return [int(i) for i in torch.as_tensor(key).reshape(-1).tolist()]

    def batches(
        self, indices: Sequence[int] | np.ndarray | None, batch_size: int, pin: bool = False
    ) -> Iterator[torch.Tensor]:
        """Decoded batches of ``indices`` (None: all, in order), in that order, through worker processes."""
        rows = np.arange(len(self), dtype=np.int64) if indices is None else integer_rows(indices)
        if not len(rows):
            return
        sampler = _IndexBatches(rows, batch_size)  # one small list per batch, made when it is sent
        workers = min(self.workers, len(sampler))
        import_decoders()  # before the workers fork: each would import them again (seconds per pass)
        loader = torch.utils.data.DataLoader(
            self.decoder(),
            batch_sampler=sampler,
            num_workers=workers if workers > 1 else 0,
            collate_fn=_collate,
            pin_memory=pin,
            prefetch_factor=2 if workers > 1 else None,
        )
        for step, (images, errors) in enumerate(loader, 1):
            _raise_first(errors)
            yield images
            if step % TRIM_EVERY == 0:  # the consumer has let go of the batches before this one
                release_free_memory()

    def digest_bytes(self) -> bytes:
        """What the data set's digest hashes for this split: each file's name and size (not its
        pixels); kept from :meth:`stat_key`'s pass when it ran, else one ``stat`` per file now."""
        if self._digest is None:
            h = hashlib.sha256()
            for file in self.files:
                h.update(_digest_line(file, file.stat()))
            self._digest = h.digest()
        return self._digest

    def stat_key(self, root: Path, advance: Callable[[int], None] | None = None) -> str:
        """The pixel-statistics cache key of this pool (:func:`svpkit.data.stats_cache.listing_key`),
        and from the same ``stat`` of each file its :meth:`digest_bytes`: one pass over the folder."""
        h = hashlib.sha256()
        key = listing_key(self.files, root, self.size, advance, lambda file, st: h.update(_digest_line(file, st)))
        self._digest = h.digest()
        return key


def _digest_line(file: Path | str, st: os.stat_result) -> bytes:
    return f"{file}\0{st.st_size}\0".encode()


class _IndexBatches:
    """A batch sampler over an index array: the list of a batch's indices is made only when the
    loader asks for it (a list of the whole pool's ints costs 36 bytes per index)."""

    def __init__(self, rows: np.ndarray, batch_size: int) -> None:
        self.rows, self.batch_size = rows, batch_size

    def __len__(self) -> int:
        return -(-len(self.rows) // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        for start in range(0, len(self.rows), self.batch_size):
            yield self.rows[start : start + self.batch_size].tolist()


def _raise_first(errors: list[str]) -> None:
    for error in errors:
        if error:
            raise DataError(error)


def image_moments(batches: Iterator[torch.Tensor]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std (at least 1) of uint8 NHWC batches, in 0–255 units.

    Sums of the pixel values and of their squares are exact integers (int64), so the result does
    not depend on how the images are batched: the in-memory and the streamed path agree exactly.
    """
    count, total, squares = 0, torch.zeros(3, dtype=torch.int64), torch.zeros(3, dtype=torch.int64)
    for batch in batches:
        flat = batch.reshape(-1, batch.shape[-1])
        count += flat.shape[0]
        for start in range(0, flat.shape[0], MOMENT_ROWS):  # int64 temporaries of at most 48 MiB
            pixels = flat[start : start + MOMENT_ROWS].to(torch.int64)
            total += pixels.sum(0)
            squares += (pixels * pixels).sum(0)
    if count < 2:
        return tuple(float(v) for v in total.double()), (1.0,) * len(total)
    mean = [int(t) / count for t in total]
    var = [(int(s) - int(t) * int(t) / count) / (count - 1) for s, t in zip(squares, total)]
    return tuple(mean), tuple(max(float(np.sqrt(max(v, 0.0))), 1.0) for v in var)


def integer_rows(indices: Sequence[int] | np.ndarray) -> np.ndarray:
    """``indices`` as an integer array without a copy when they are one (an int32 pool index stays
    int32: batches are converted to int64 one at a time), else as int64."""
    rows = np.asarray(indices)
    return rows if rows.dtype.kind == "i" and rows.dtype.itemsize >= 4 else rows.astype(np.int64)


def row_batches(x: Any, idx: torch.Tensor | None, batch_size: int) -> Iterator[torch.Tensor]:
    """Batches of the rows ``idx`` of ``x`` (None: all rows), in order, on ``x``'s device: a
    tensor's slices or gathered rows, a streamed pool's batches decoded by loader workers."""
    if isinstance(x, StreamedImages):
        yield from x.batches(None if idx is None else idx.cpu().numpy(), batch_size)
        return
    total = x.shape[0] if idx is None else idx.numel()
    for start in range(0, total, batch_size):
        if idx is None:
            yield x[start : start + batch_size]
        else:
            rows = idx[start : start + batch_size].long()  # a pool index may be int32 (4 bytes per image)
            yield x[rows if rows.device == x.device else rows.to(x.device)]
