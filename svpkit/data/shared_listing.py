"""An image folder's listing, built in memory or straight into the files the ``torchrun`` ranks of a
machine share.

Every rank needs the whole file list (any labeled image may be in its part of a training batch),
so the list cannot be sharded; it need not be private memory on every rank though. The listing's
arrays (the :class:`~svpkit.data.file_list.FileList` buffer and offsets, the labels) are stored in
``$SVPKIT_CACHE/listings/`` under the sha256 of their bytes and mapped read-only (the labels
copy-on-write, for the labels tensor), so their pages are the page cache's, resident once per
machine: a page mapped by ``r`` ranks counts ``1/r`` of its size in each rank's proportional memory
(PSS). DataLoader workers forked from a rank map the same pages. A file is created by ``os.link``
of a temporary file, which fails when the name exists: it is never replaced once it does.

Two ways to get there (who does which: :mod:`svpkit.data.listing_handoff`):

* :class:`Spool` (the one lister of a machine) appends each class folder's paths, offsets and
  labels to temporary files as it lists them and turns them into the ``.npy`` files at the end
  (header, then the bytes copied and hashed in chunks; offsets narrowed to int32 as
  :func:`~svpkit.data.file_list.narrow_offsets` does): the lister never holds the listing in
  private memory, only one class folder's names at a time. The files are byte for byte what
  ``numpy.save`` writes for the in-memory arrays, under the same name.
* :class:`Collect` lists into memory (one process; a rank that lists for itself), and
  :func:`shared` then writes the arrays and maps them in place of the private copy (the loader
  then gives the C heap's free pages back, ``svpkit.runtime.release_free_memory``).

The files are content-addressed: a changed folder lists to other bytes and another name. An
unwritable cache folder only means the ranks keep private copies.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from array import array
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from svpkit.data.file_list import FileList, FileListBuilder, offset_dtype
from svpkit.runtime import cache_dir

KIND = "listings"
PARTS = ("blob", "offsets", "labels")
CHUNK = 1 << 20
"""Bytes copied (and hashed) at a time when a spool becomes the listing files."""

Arrays = tuple[FileList, np.ndarray]


class SpoolError(OSError):
    """Writing a :class:`Spool`'s files failed (not reading the folder it lists)."""


def several_ranks() -> bool:
    """Whether this process is one of several ``torchrun`` ranks (torchrun's ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def listing_folder() -> Path:
    return cache_dir() / KIND


class Collect:
    """A listing built in memory: relative paths (bytes, no object per file) and their labels."""

    def __init__(self, root: Path) -> None:
        self.files, self.labels = FileListBuilder(root), array("q")

    def __len__(self) -> int:
        return len(self.labels)

    def add(self, relative: Sequence[str], labels: int | Sequence[int]) -> None:
        """Append ``relative`` (paths under the root) with ``labels`` (one for all, or one each)."""
        self.files.extend(relative)
        self.labels.extend([labels] * len(relative) if isinstance(labels, int) else labels)

    def finish(self) -> Arrays:
        return self.files.build(), np.array(self.labels, dtype=np.int64)


class Spool:
    """A listing appended to temporary files in ``folder`` (module docstring); :meth:`finish` makes
    them the content-addressed listing files and maps them. Raises :class:`SpoolError` when a write
    fails (the caller then lists into memory)."""

    def __init__(self, folder: Path, root: Path) -> None:
        self.root, self.size, self.count = root, 0, 0
        self.names: dict[str, str] = {}
        """The listing files' names in the listing folder, once :meth:`finish` made them."""
        stem = f".{uuid.uuid4().hex}"
        self.paths = {name: folder / f"{stem}-{name}.spool" for name in PARTS}
        self.out: dict[str, BinaryIO] = {}
        try:
            for name in PARTS:
                self.out[name] = open(self.paths[name], "wb", buffering=CHUNK)  # noqa: SIM115 (closed in finish/discard)
            self.out["offsets"].write(np.zeros(1, np.int64).tobytes())
        except OSError as exc:
            self.discard()
            raise SpoolError(f"cannot create the listing's spool files: {exc}") from exc

    def __len__(self) -> int:
        return self.count

    def add(self, relative: Sequence[str], labels: int | Sequence[int]) -> None:
        try:
            self._add(relative, labels)
        except OSError as exc:
            raise SpoolError(f"cannot write the listing's spool files: {exc}") from exc

    def _add(self, relative: Sequence[str], labels: int | Sequence[int]) -> None:
        offsets = array("q")
        for rel in relative:
            data = rel.encode("utf-8")
            self.out["blob"].write(data)
            self.size += len(data)
            offsets.append(self.size)
            if len(offsets) >= CHUNK // 8:
                self.out["offsets"].write(offsets.tobytes())
                offsets = array("q")
        self.out["offsets"].write(offsets.tobytes())
        n = len(relative)
        labelled = np.full(n, labels, np.int64) if isinstance(labels, int) else np.asarray(labels, np.int64)
        self.out["labels"].write(labelled.tobytes())
        self.count += n

    def finish(self) -> Arrays:
        """The listing files (created unless they exist) mapped; the temporary files removed."""
        dtypes = {
            "blob": np.dtype(np.uint8),
            "offsets": np.dtype(offset_dtype(self.size)),
            "labels": np.dtype(np.int64),
        }
        sizes = {"blob": self.size, "offsets": self.count + 1, "labels": self.count}
        stored = {name: self.paths[name].with_suffix(".npy.tmp") for name in PARTS}
        h = _hasher()
        try:
            for out in self.out.values():
                out.close()
            for name in PARTS:
                h.update(_part_prefix(name, dtypes[name], sizes[name]))
                _spool_to_npy(self.paths[name], stored[name], dtypes[name], sizes[name], h)
            names = _names(h)
            for name in PARTS:
                _place(stored[name], names[name])
            self.names = {name: path.name for name, path in names.items()}
            return _mapped(self.root, names)
        except (OSError, ValueError) as exc:
            raise SpoolError(f"cannot write the listing files: {exc}") from exc
        finally:
            self.discard(stored.values())

    def discard(self, extra: Iterable[Path] = ()) -> None:
        """Close and remove the temporary files (what :meth:`finish` placed stays)."""
        for out in self.out.values():
            try:
                out.close()
            except OSError:
                pass
        for path in [*self.paths.values(), *extra]:
            path.unlink(missing_ok=True)


def _spool_to_npy(spool: Path, path: Path, dtype: np.dtype, size: int, h: hashlib._Hash) -> None:
    """``spool``'s raw (int64 for the offsets) values as a ``.npy`` of ``size`` ``dtype`` values,
    its data hashed into ``h``."""
    raw = np.dtype(np.int64) if dtype.kind == "i" else dtype
    with open(spool, "rb") as src, open(path, "wb") as dst:
        header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": (size,)}
        np.lib.format.write_array_header_1_0(dst, header)
        while chunk := src.read(CHUNK - CHUNK % raw.itemsize):
            data = np.frombuffer(chunk, dtype=raw).astype(dtype, copy=False).tobytes()
            h.update(data)
            dst.write(data)
        if src.tell() != size * raw.itemsize:
            raise OSError(f"{spool} holds {src.tell()} bytes, not {size} values")


def shared(files: FileList, labels: np.ndarray) -> Arrays:
    """``files`` and ``labels`` backed by one machine-wide file each (module docstring), or as
    given when the cache folder cannot be written."""
    arrays = {"blob": files.blob, "offsets": files.offsets, "labels": labels}
    h = _hasher()
    for name in PARTS:
        a = np.ascontiguousarray(arrays[name])
        h.update(_part_prefix(name, a.dtype, a.size))
        h.update(a.data)
    paths = _names(h)
    try:
        listing_folder().mkdir(parents=True, exist_ok=True)
        for name in PARTS:
            if not paths[name].is_file():
                temp = paths[name].with_name(f".{uuid.uuid4().hex}.npy.tmp")
                try:
                    with open(temp, "wb") as out:
                        np.save(out, arrays[name], allow_pickle=False)
                    _place(temp, paths[name])
                finally:
                    temp.unlink(missing_ok=True)
        return _mapped(files.root, paths)
    except (OSError, ValueError):
        return files, labels


def mapped_files(root: Path, names: dict[str, str]) -> Arrays:
    """The listing files ``names`` (part: file name in the listing folder) mapped; ``OSError`` or
    ``ValueError`` when one is missing or not a listing's array."""
    folder = listing_folder()
    if set(names) != set(PARTS) or any(os.sep in n or not n.endswith(".npy") for n in names.values()):
        raise ValueError(f"not a listing: {names}")
    files, labels = _mapped(root, {name: folder / names[name] for name in PARTS})
    if labels.ndim != 1 or len(files.offsets) != len(labels) + 1 or int(files.offsets[-1]) != len(files.blob):
        raise ValueError(f"inconsistent listing files {names}")
    return files, labels


def _mapped(root: Path, paths: dict[str, Path]) -> Arrays:
    mapped = {name: np.load(paths[name], mmap_mode="c" if name == "labels" else "r") for name in PARTS}
    return FileList(root, mapped["blob"], mapped["offsets"]), mapped["labels"]


def _hasher() -> hashlib._Hash:
    return hashlib.sha256(KIND.encode())


def _part_prefix(name: str, dtype: np.dtype, size: int) -> bytes:
    return f"\0{name}\0{dtype.str}\0{size}\0".encode()


def _names(h: hashlib._Hash) -> dict[str, Path]:
    return {name: listing_folder() / f"{h.hexdigest()[:40]}-{name}.npy" for name in PARTS}


def _place(temp: Path, path: Path) -> None:
    """``temp`` becomes ``path`` unless that exists (then it is never replaced: the ranks must map
    the same file, not one each); ``temp`` is gone either way."""
    try:
        if not path.is_file():
            os.link(temp, path)
    except FileExistsError:
        pass
    finally:
        temp.unlink(missing_ok=True)
