"""A pool's image files held compactly: one byte buffer of relative paths and their offsets.

A list of ``pathlib.Path`` objects costs about 2.2 KiB per file (the object, its parts, their
strings, a tuple in the listing), and DataLoader workers forked from the process copy the pages
they touch (reference counts are writes), so at ImageNet's 1.28M files the file list alone was
gigabytes. :class:`FileList` keeps the paths relative to one root as UTF-8 bytes in one numpy
buffer with offsets (int32 while the paths' bytes fit one, else int64: :func:`offset_dtype`): the
relative path's length + 4 bytes per file at ImageNet's size, no Python object per file, and pages
that workers only read. Indexing returns the ``Path`` (``root / relative``, the
same path and string the list of paths held); ``ids`` are the relative paths (``as_posix``).
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import overload

import numpy as np

INT32_LIMIT = int(np.iinfo(np.int32).max)


def offset_dtype(total_bytes: int) -> type[np.signedinteger]:
    """The narrowest offset type for ``total_bytes`` of paths: int32 up to 2 GiB, else int64."""
    return np.int32 if total_bytes <= INT32_LIMIT else np.int64


def narrow_offsets(offsets: np.ndarray) -> np.ndarray:
    """``offsets`` (non-decreasing, last = total bytes) in :func:`offset_dtype`'s type."""
    dtype = offset_dtype(int(offsets[-1]) if len(offsets) else 0)
    return offsets if offsets.dtype == dtype else offsets.astype(dtype)


class FileList(Sequence[Path]):
    """Files ``root / relative[i]`` (see the module docstring)."""

    def __init__(self, root: str | Path, blob: np.ndarray, offsets: np.ndarray) -> None:
        self.root = Path(root)
        self.blob = blob
        self.offsets = offsets

    @classmethod
    def build(cls, root: str | Path, relative: Iterable[str]) -> FileList:
        """The files ``root / r`` for each relative path ``r``, in that order."""
        builder = FileListBuilder(root)
        builder.extend(relative)
        return builder.build()

    @classmethod
    def of(cls, files: Iterable[str | Path], root: str | Path | None = None) -> FileList:
        """A list of paths, relative to ``root`` (None: as given, under the empty root)."""
        if root is None:
            return cls.build("", (str(f) for f in files))
        base = Path(root)
        return cls.build(base, (Path(f).relative_to(base).as_posix() for f in files))

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def relative(self, i: int) -> str:
        """The ``i``-th file's path relative to ``root``."""
        start, stop = int(self.offsets[i]), int(self.offsets[i + 1])
        return bytes(self.blob[start:stop]).decode("utf-8")

    @overload
    def __getitem__(self, i: int) -> Path: ...

    @overload
    def __getitem__(self, i: slice) -> FileList: ...

    def __getitem__(self, i: int | slice) -> Path | FileList:
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.root / self.relative(i)

    def __iter__(self) -> Iterator[Path]:
        for i in range(len(self)):
            yield self.root / self.relative(i)

    def take(self, idx: Sequence[int] | np.ndarray) -> FileList:
        """The files at positions ``idx``, in that order (vectorised: no Python object per file)."""
        idx = np.asarray(idx, dtype=np.int64)
        starts = self.offsets[idx].astype(np.int64)
        lengths = self.offsets[idx + 1] - starts
        offsets = np.zeros(len(idx) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        positions = np.repeat(starts - offsets[:-1], lengths) + np.arange(int(offsets[-1]), dtype=np.int64)
        return FileList(self.root, self.blob[positions], narrow_offsets(offsets))

    def __add__(self, other: FileList) -> FileList:
        if other.root != self.root:
            raise ValueError(f"cannot join file lists under {self.root} and {other.root}")
        return FileList(
            self.root,
            np.concatenate([self.blob, other.blob]),
            narrow_offsets(
                np.concatenate(
                    [self.offsets[:-1].astype(np.int64), other.offsets.astype(np.int64) + int(self.offsets[-1])]
                )
            ),
        )

    @property
    def ids(self) -> RelativePaths:
        """The relative paths (the examples' ids), as a read-only sequence of strings."""
        return RelativePaths(self)

    @property
    def nbytes(self) -> int:
        return int(self.blob.nbytes + self.offsets.nbytes)


class FileListBuilder:
    """Appends relative paths to a :class:`FileList` under construction (bytes, no objects kept)."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.data = bytearray()
        self.offsets = array("q", [0])

    def extend(self, relative: Iterable[str]) -> None:
        for rel in relative:
            self.data += rel.encode("utf-8")
            self.offsets.append(len(self.data))

    def build(self) -> FileList:
        blob = np.frombuffer(bytes(self.data), dtype=np.uint8)
        offsets = np.frombuffer(self.offsets, dtype=np.int64)
        narrowed = narrow_offsets(offsets)  # a copy when narrowed; else copy out of the array's buffer
        return FileList(self.root, blob, narrowed if narrowed is not offsets else offsets.copy())


class RelativePaths(Sequence[str]):
    """The relative paths of a :class:`FileList`, decoded on access."""

    def __init__(self, files: FileList) -> None:
        self.files = files

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same strings (a list of ids, as the paths were held before)."""
        if not isinstance(other, Sequence) or isinstance(other, str):
            return NotImplemented
        return len(other) == len(self) and all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RelativePaths({list(self[:3])}{'...' if len(self) > 3 else ''}, {len(self)} files)"

    def __len__(self) -> int:
        return len(self.files)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            return [self.files.relative(j) for j in range(len(self))[i]]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self.files.relative(i)
