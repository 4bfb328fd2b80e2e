"""Pixel statistics of an image pool, computed once per listing and kept on disk.

A streamed image folder needs the mean/std of its training pixels to normalise them, and computing
them is a decoding pass over every training image: at ImageNet size longer than the round itself.
They depend only on the files and the decoded size, so they are cached under a key made of what
identifies the files without reading them: each file's path relative to the data set's root, its
size and its modification time (nanoseconds), with the decoded side. A file added, removed,
rewritten or touched changes the key, and the next load computes the statistics again.

The cache folder is ``$SVPKIT_CACHE`` (default ``~/.cache/svpkit``), one small JSON file per key
under ``image_moments/``; it is written atomically and never required (an unwritable folder or
an unreadable entry only means the pass runs).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from svpkit.data.file_list import FileList
from svpkit.runtime import cache_dir

KIND = "image_moments"

Moments = tuple[tuple[float, ...], tuple[float, ...]]


def listing_key(
    files: Sequence[Path],
    root: Path,
    size: int,
    advance: Callable[[int], None] | None = None,
    each: Callable[[str, os.stat_result], None] | None = None,
) -> str:
    """The cache key of ``files`` decoded at ``size``: sha256 of (relative path, bytes, mtime) per file.

    ``each`` sees every file (its path as a string, ``str(file)``) with its ``stat`` result, so
    what else needs the files' sizes (the data set's digest:
    :meth:`svpkit.data.streaming.StreamedImages.stat_key`) comes from this same pass: a load stats
    the folder once. A :class:`FileList` under ``root`` is read as strings (no ``Path`` per file)."""
    h = hashlib.sha256(f"{KIND}\0size={size}\0n={len(files)}\0".encode())
    for i, (rel, full) in enumerate(_relative_and_full(files, root), 1):
        st = os.stat(full)
        h.update(f"{rel}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        if each is not None:
            each(full, st)
        if advance is not None and i % 4096 == 0:
            advance(4096)
    if advance is not None:
        advance(len(files) % 4096)
    return h.hexdigest()


def _relative_and_full(files: Sequence[Path], root: Path) -> Iterator[tuple[str, str]]:
    """(path relative to ``root``, ``str`` of the path) of each file."""
    if isinstance(files, FileList) and files.root == root:
        base = str(files.root)
        base = "" if base == "." else base  # str(Path("") / r) is r
        for i in range(len(files)):
            rel = files.relative(i)
            yield rel, os.path.join(base, rel)
        return
    for file in files:
        rel = file.relative_to(root).as_posix() if file.is_relative_to(root) else str(file)
        yield rel, str(file)


def _entry(key: str) -> Path:
    return cache_dir() / KIND / f"{key}.json"


def read_moments(key: str) -> Moments | None:
    """The cached statistics under ``key``, or None (absent or unreadable)."""
    try:
        got = json.loads(_entry(key).read_text())
        return tuple(float(v) for v in got["mean"]), tuple(float(v) for v in got["std"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_moments(key: str, moments: Moments, images: int) -> None:
    """Keep ``moments`` under ``key`` (atomically; an unwritable cache is skipped)."""
    entry = _entry(key)
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = entry.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"mean": list(moments[0]), "std": list(moments[1]), "images": images}))
        os.replace(tmp, entry)
    except OSError:
        return


def cached_moments(key: str, compute: Callable[[], Moments], images: int) -> tuple[Moments, bool]:
    """(the statistics under ``key``, whether they came from the cache); computed and kept when absent."""
    found = read_moments(key)
    if found is not None:
        return found, True
    moments = compute()
    write_moments(key, moments, images)
    return moments, False
