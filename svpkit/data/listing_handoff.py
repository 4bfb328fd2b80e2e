"""One lister per machine under ``torchrun``: local rank 0 lists an image folder, the machine's other
ranks map what it wrote.

Listing a folder costs every rank the same time and, while it lists, memory for the listing (the
arrays of :mod:`svpkit.data.shared_listing`, ~45 bytes per image, and their building). Under
``torchrun`` (``TORCHELASTIC_RUN_ID``, ``LOCAL_RANK`` and ``LOCAL_WORLD_SIZE`` set, several ranks) only
the rank with ``LOCAL_RANK`` 0 lists: it spools the listing into the content-addressed listing files
(:class:`~svpkit.data.shared_listing.Spool`: no private copy of the listing at any time), then
writes a small *pointer* file naming them, atomically (a temporary file renamed). The other ranks
never list: they wait for the pointer (polling; ``SVPKIT_LISTING_WAIT`` seconds at most, default
3600, then a :class:`~svpkit.errors.DataError`) and map the files it names.

The pointer's name is the sha256 of this launch (the torchrun agent's process id and start time,
``TORCHELASTIC_RUN_ID``, ``MASTER_ADDR``/``MASTER_PORT``, the restart count), the folder's real path
and how many times this process has loaded that folder: no other job's or attempt's pointer, and no
earlier load's, can be read. The pointer holds the folder's *key*, :func:`folder_key`: the sha256
of the folder's real path, the load options that change the listing, and the ``(st_ino,
st_mtime_ns, st_ctime_ns)`` of every directory whose entries the listing reads (a directory's
mtime and ctime change whenever an entry is added, removed or renamed) and the stat of the
manifest files — computed without listing a single image. Each rank computes the key itself
before it reads the pointer; a different key (the folder changed while the ranks loaded it) stops
the load with a DataError rather than give the ranks different listings.

Fallbacks: an unwritable cache folder (each rank checks by creating a temporary file there) means
every rank lists for itself and keeps a private copy; local rank 0 failing to write the listing
files (a full disk) says so in the pointer and the other ranks list for themselves; local rank 0
failing to list (a bad folder) writes its error to the pointer, which the other ranks raise; a
pointer whose files are missing or broken is not trusted (the rank lists for itself). Launches
other than ``torchrun``'s keep the path where every rank lists and the first to finish writes the
shared files (:func:`~svpkit.data.shared_listing.shared`), as does ``on_corrupt=skip`` (it reads the
images' contents, not only names).
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from svpkit.data.shared_listing import (
    Arrays,
    Collect,
    Spool,
    SpoolError,
    listing_folder,
    mapped_files,
    several_ranks,
    shared,
)
from svpkit.errors import DataError
from svpkit.progress import current

WAIT_ENV = "SVPKIT_LISTING_WAIT"
WAIT_SECONDS = 3600.0
FORMAT = "svpkit listing 1"
ListInto = Callable[[Any, Any], list[str]]
"""Fills a training and a test sink (``add(relative, labels)``, ``len``) and returns the classes."""
_loads: Counter[str] = Counter()


def one_lister_per_machine() -> bool:
    """Whether this process is one of several ranks that ``torchrun`` started on this machine."""
    env = os.environ
    return several_ranks() and all(v in env for v in ("TORCHELASTIC_RUN_ID", "LOCAL_RANK", "LOCAL_WORLD_SIZE"))


def folder_key(root: Path, folders: Iterable[Path], files: Iterable[Path], options: dict[str, Any]) -> str:
    """The sha256 of what a listing of ``root`` depends on (module docstring): ``folders`` whose
    entries it reads, ``files`` it reads (absent ones count as absent), ``options``."""
    real = os.path.realpath(root)
    stats: list[Any] = [FORMAT, real, sorted(options.items())]
    for folder in folders:
        st = folder.stat()
        stats.append([os.path.relpath(folder, root), st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns])
    for file in files:
        try:
            st = file.stat()
            stats.append([os.path.relpath(file, root), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns])
        except FileNotFoundError:
            stats.append([os.path.relpath(file, root), None])
    return hashlib.sha256(json.dumps(stats).encode()).hexdigest()


def list_once(root: Path, key: Callable[[], str], list_into: ListInto) -> tuple[Arrays, Arrays, list[str], str]:
    """The training and test listings and the classes, and who listed (``"lister"``, ``"mapped"``:
    from local rank 0, ``"private"``: this rank for itself); call under :func:`one_lister_per_machine`."""
    real = os.path.realpath(root)
    _loads[real] += 1
    pointer = listing_folder() / f"{_pointer_name(real, _loads[real])}.pointer.json"
    folder_key_now = key()
    if not _writable():
        return (*_private(root, list_into), "private")
    if int(os.environ["LOCAL_RANK"]) == 0:
        return (*_list_and_point(root, list_into, pointer, folder_key_now), "lister")
    found = _wait(pointer, root)
    if "error" in found:
        raise DataError(str(found["error"]))
    if found.get("key") != folder_key_now:
        raise DataError(f"{root} changed while the torchrun ranks were loading it; load it again once it is settled")
    if not found.get("shared"):
        return (*_private(root, list_into), "private")
    try:
        train, test = (mapped_files(root, found[split]) for split in ("train", "test"))
    except (OSError, ValueError, KeyError, TypeError):  # files gone or broken: not trusted
        return (*_private(root, list_into), "private")
    return train, test, list(found["classes"]), "mapped"


def _list_and_point(root: Path, list_into: ListInto, pointer: Path, key: str) -> tuple[Arrays, Arrays, list[str]]:
    """Local rank 0: the listing spooled into the shared files, then the pointer to them."""
    spools: list[Spool] = []
    try:
        for _ in ("train", "test"):
            spools.append(Spool(listing_folder(), root))
        classes = list_into(*spools)
        train, test = (s.finish() for s in spools)
    except SpoolError:  # e.g. a full disk: every rank lists for itself
        _point(pointer, {"key": key, "shared": False})
        return _private(root, list_into)
    except BaseException as exc:
        message = str(exc) if isinstance(exc, DataError) else f"local rank 0 failed to list {root}: {exc!r}"
        _point(pointer, {"key": key, "error": message}, quiet=True)
        raise
    finally:
        for s in spools:
            s.discard()
    names = {"train": spools[0].names, "test": spools[1].names}
    _point(pointer, {"key": key, "shared": True, "classes": classes, **names})
    return train, test, classes


def _private(root: Path, list_into: ListInto) -> tuple[Arrays, Arrays, list[str]]:
    """This rank's own listing, shared through the content-addressed files where it can be."""
    train, test = Collect(root), Collect(root)
    classes = list_into(train, test)
    return shared(*train.finish()), shared(*test.finish()), classes


def _wait(pointer: Path, root: Path) -> dict[str, Any]:
    """The pointer's content once local rank 0 wrote it (DataError after ``SVPKIT_LISTING_WAIT`` s)."""
    limit = float(os.environ.get(WAIT_ENV, WAIT_SECONDS))
    parent, start, pause = os.getppid(), time.monotonic(), 0.01
    with current().task(f"wait for local rank 0 to list {root}", total=None):
        while not pointer.is_file():
            if time.monotonic() - start > limit:
                raise DataError(f"local rank 0 did not list {root} within {limit:g} s ({WAIT_ENV}); see its error")
            if os.getppid() != parent:
                raise DataError(f"torchrun ended while waiting for local rank 0 to list {root}")
            time.sleep(pause)
            pause = min(2 * pause, 0.5)
    found = json.loads(pointer.read_text(encoding="utf-8"))
    if not isinstance(found, dict):
        raise DataError(f"{pointer} is not a listing pointer")
    return found


def _point(pointer: Path, content: dict[str, Any], quiet: bool = False) -> None:
    """Write ``content`` to ``pointer`` atomically (a temporary file renamed). A failure is a
    DataError (the other ranks would wait in vain), or ignored when ``quiet`` (already failing)."""
    temp = pointer.with_name(f".{pointer.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(content), encoding="utf-8")
        os.replace(temp, pointer)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        if not quiet:
            raise DataError(f"cannot write {pointer} for the other torchrun ranks: {exc}") from None


def _writable() -> bool:
    """Whether the listing folder can be written (a temporary file created there)."""
    try:
        listing_folder().mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=listing_folder()):
            return True
    except OSError:
        return False


def _pointer_name(real: str, nth: int) -> str:
    env = os.environ
    launch = [
        env.get(v, "") for v in ("TORCHELASTIC_RUN_ID", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")
    ]
    parent = os.getppid()
    launch += [str(parent), _start_time(parent), real, str(nth)]
    return hashlib.sha256("\0".join(launch).encode()).hexdigest()[:40]


def _start_time(pid: int) -> str:
    """When process ``pid`` started (clock ticks since boot; Linux), so a reused id is another launch."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[-1].split()[19]
