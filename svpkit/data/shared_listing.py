"""An image folder's listing shared between the ``torchrun`` ranks of a machine.

Every rank needs the whole file list (any labeled image may be in its part of a training batch),
so the list cannot be sharded; it need not be private memory on every rank though. Under
``torchrun`` (``WORLD_SIZE`` > 1) each rank lists the folder as one process does, writes the
listing's arrays (the :class:`~svpkit.data.file_list.FileList` buffer and offsets, the labels) to
``$SVPKIT_CACHE/listings/`` under the sha256 of their bytes, and maps that file read-only (the
labels copy-on-write, for the labels tensor). The first rank to finish writing creates the file
(``os.link`` of its temporary file, which fails when the name exists) and every rank maps that same
file, so its pages are the page cache's, resident once per machine: a page mapped by ``r`` ranks
counts ``1/r`` of its size in each rank's proportional memory (PSS), and the rank's private copy is
dropped (the loader then gives the C heap's free pages back to the system,
``svpkit.runtime.release_free_memory``, or the rank would keep them resident). DataLoader workers
forked from a rank map the same pages.

The files are content-addressed: a changed folder lists to other bytes and another name; nothing
reads a listing file without having listed the folder first (the name is the hash of what was
just listed). An unwritable cache folder only means the ranks keep private copies.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from svpkit.data.file_list import FileList
from svpkit.runtime import cache_dir

KIND = "listings"
PARTS = ("blob", "offsets", "labels")


def several_ranks() -> bool:
    """Whether this process is one of several ``torchrun`` ranks (torchrun's ``WORLD_SIZE``)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def shared(files: FileList, labels: np.ndarray) -> tuple[FileList, np.ndarray]:
    """``files`` and ``labels`` backed by one machine-wide file each (module docstring), or as
    given when the cache folder cannot be written."""
    arrays = {"blob": files.blob, "offsets": files.offsets, "labels": labels}
    h = hashlib.sha256(KIND.encode())
    for name in PARTS:
        a = np.ascontiguousarray(arrays[name])
        h.update(f"\0{name}\0{a.dtype.str}\0{a.size}\0".encode())
        h.update(a.data)
    folder = cache_dir() / KIND
    paths = {name: folder / f"{h.hexdigest()[:40]}-{name}.npy" for name in PARTS}
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name in PARTS:
            _create(paths[name], arrays[name])
        mapped = {name: np.load(paths[name], mmap_mode="c" if name == "labels" else "r") for name in PARTS}
    except (OSError, ValueError):
        return files, labels
    return FileList(files.root, mapped["blob"], mapped["offsets"]), mapped["labels"]


def _create(path: Path, array: np.ndarray) -> None:
    """``path`` holding ``array`` unless it exists; never replaced once it does (the ranks must
    map the same file, not one each)."""
    if path.is_file():
        return
    temp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as out:
            np.save(out, array, allow_pickle=False)
        try:
            os.link(temp, path)
        except FileExistsError:
            pass
    finally:
        temp.unlink(missing_ok=True)
