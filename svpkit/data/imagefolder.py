"""Image folders (ImageNet layout): ``<path>/train/<class>/*.jpg`` and ``<path>/val/<class>/*.jpg``
(``test/`` is accepted for ``val/``).

Every image is decoded with torchvision, its shorter side resized to ``size`` and centre-cropped to
``size``×``size`` (the usual evaluation transform), and kept as uint8 NHWC in memory, so the torch
learner can draw batches on the device. Classes are the sorted folder names of ``train/``; the
mean/std come from the training images (exact integer pixel moments, the same on both paths).

When to stream: a pool whose decoded size (train and test, ``n × size² × 3`` bytes) exceeds the
memory budget (option ``memory_budget`` in GiB; default a quarter of the machine's memory) is not
decoded up front: its splits are :class:`~svpkit.data.streaming.StreamedImages`, decoded per batch
by DataLoader worker processes (option ``workers``), and the run logs ``svpkit.data_access =
stream``; ``stream=on``/``off`` forces either path. Both paths decode the same files with the same
function, so they give the same picks for the same seed. An undecodable file stops the load (in
memory) or the pass that meets it (streamed) with one error naming the file; ``on_corrupt=skip``
drops such files at load instead (a decoding pass over the pool when streaming) and counts them in
the data set's source.

Unlabeled images (labeling projects, docs/labeling.md) lie in ``<path>/unlabeled/`` (any depth)
and follow the labeled ones; the class folders of ``train/`` may then be empty (they name the
classes) and ``val/`` may be absent (no test error). Instead of ``train/`` folders a manifest
``<path>/train.csv`` with the columns ``path,label`` (paths relative to ``<path>``, an empty label
for an unlabeled image) may list the training images; its classes are ``classes.txt`` (one per
line) or else its distinct labels. An example's id is its path relative to ``<path>``.

Under ``torchrun`` only local rank 0 of each machine lists the folder, straight into files that
every rank of the machine maps; the others wait for it (:mod:`svpkit.data.listing_handoff`).
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from svpkit.data.base import UNLABELED, Dataset, DatasetOption, DatasetSpec, Split
from svpkit.data.file_list import FileList
from svpkit.data.listing_handoff import folder_key, list_once, one_lister_per_machine
from svpkit.data.shared_listing import Collect, Spool, several_ranks, shared
from svpkit.data.stats_cache import Moments, cached_moments
from svpkit.data.streaming import (
    MEMORY_FRACTION,
    StreamedImages,
    decode_image_file,
    image_moments,
    machine_memory,
)
from svpkit.errors import DataError
from svpkit.progress import Advance, current
from svpkit.runtime import release_free_memory

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
DEFAULT_SIZE = 224
UNLABELED_DIR = "unlabeled"
MANIFEST = "train.csv"
CLASSES_FILE = "classes.txt"


Sink = Collect | Spool
"""Where a listing is built: in memory, or spooled into the shared listing files."""


@dataclass
class Listing:
    """Image files (held compactly: :class:`~svpkit.data.file_list.FileList`) and their labels
    (``UNLABELED`` for none)."""

    files: FileList
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def __add__(self, other: Listing) -> Listing:
        return Listing(self.files + other.files, np.concatenate([self.labels, other.labels]))

    def keep(self, rows: np.ndarray) -> Listing:
        return Listing(self.files.take(rows), self.labels[rows])

    def __iter__(self) -> Iterator[tuple[Path, int]]:
        """(file, label) pairs, one at a time (what a list of them held)."""
        for i, file in enumerate(self.files):
            yield file, int(self.labels[i])


def _images(folder: Path) -> list[str]:
    """The image names in ``folder``, sorted (the order of its sorted paths)."""
    return sorted(e.name for e in os.scandir(folder) if os.path.splitext(e.name)[1].lower() in EXTENSIONS)


def _class_folders(folder: Path, classes: list[str], root: Path | None = None) -> Listing:
    """The images of each class folder of ``folder`` in class order, without a Python object per
    file; held relative to ``root`` (default: ``folder``)."""
    sink = Collect(folder if root is None else root)
    _add_class_folders(sink, folder, classes, folder if root is None else root)
    return Listing(*sink.finish())


def _add_class_folders(sink: Sink, folder: Path, classes: list[str], root: Path) -> None:
    """Append the images of each class folder of ``folder`` (class order) to ``sink``, one folder at a time."""
    base = folder.relative_to(root).as_posix()
    prefix = "" if base == "." else f"{base}/"
    with current().task(f"list {folder}", total=len(classes)) as advance:
        for label, name in enumerate(classes):
            if (folder / name).is_dir():
                sink.add([f"{prefix}{name}/{n}" for n in _images(folder / name)], label)
            advance(1)


def _add_unlabeled(sink: Sink, root: Path) -> int:
    """Append the images under ``unlabeled/`` (any depth, sorted) to ``sink``; how many."""
    folder = root / UNLABELED_DIR
    if not folder.is_dir():
        return 0
    files = [f for f in sorted(folder.rglob("*")) if f.is_file() and f.suffix.lower() in EXTENSIONS]
    sink.add([f.relative_to(root).as_posix() for f in files], UNLABELED)
    return len(files)


def _read(files: Listing, size: int, stream: StreamedImages | None) -> Split:
    """The split of ``files``: decoded now, or (``stream`` given: its settings) a streamed pool."""
    mapped = isinstance(files.labels, np.memmap)  # shared between torchrun ranks: not copied
    labels = torch.from_numpy(files.labels if mapped else files.labels.copy())
    ids = files.files.ids
    if stream is not None:
        return Split(StreamedImages(files.files, size, stream.workers), labels, ids)
    images = torch.empty((len(files), size, size, 3), dtype=torch.uint8)
    for i, file in enumerate(files.files):
        images[i] = decode_image_file(file, size)
    return Split(images, labels, ids)


def _readable(files: Listing, size: int, workers: int | None) -> tuple[Listing, int]:
    """``files`` without those that cannot be decoded (a decoding pass) and how many were dropped."""
    pool = StreamedImages(files.files, size, workers)
    bad: set[int] = set()
    for start in range(0, len(files), 256):
        rows = list(range(start, min(start + 256, len(files))))
        try:
            next(pool.batches(rows, len(rows)))
        except DataError:
            bad.update(i for i in rows if _undecodable(files.files[i], size))
    kept = np.asarray([i for i in range(len(files)) if i not in bad], dtype=np.int64)
    return files.keep(kept), len(bad)


def _undecodable(file: Path, size: int) -> bool:
    try:
        decode_image_file(file, size)
    except DataError:
        return True
    return False


def _manifest(root: Path, sink: Sink) -> tuple[list[str], int]:
    """Append the images ``train.csv`` lists to ``sink``; the classes (``classes.txt``, else its
    labels) and how many rows are unlabeled."""
    file = root / MANIFEST
    try:
        rows = list(csv.DictReader(file.read_text(encoding="utf-8").splitlines()))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataError(f"cannot read {file} ({type(exc).__name__}: {exc})") from None
    if not rows or not {"path", "label"} <= set(rows[0]):
        raise DataError(f"{file} must have a header with the columns 'path' and 'label' and at least one row")
    names = [(r["path"] or "").strip() for r in rows]
    labels = [(r["label"] or "").strip() for r in rows]
    classes_file = root / CLASSES_FILE
    if classes_file.is_file():
        classes = [c.strip() for c in classes_file.read_text(encoding="utf-8").splitlines() if c.strip()]
    else:
        classes = sorted({label for label in labels if label})
    unknown = sorted({label for label in labels if label and label not in classes})
    if unknown:
        raise DataError(f"{file} has labels outside the classes {classes}: {', '.join(unknown[:5])}")
    missing = [name for name in names if not (root / name).is_file()]
    if missing:
        raise DataError(f"{file} lists images that do not exist: {', '.join(missing[:3])}")
    relative = [(root / name).relative_to(root).as_posix() for name in names]
    sink.add(relative, [classes.index(label) if label else UNLABELED for label in labels])
    return classes, labels.count("")


def _training_images(root: Path, sink: Sink) -> tuple[list[str], bool]:
    """Append the labeled images (class folders or the manifest), then ``unlabeled/``, to ``sink``;
    the classes and whether any image is unlabeled."""
    train_dir = root / "train"
    if (root / MANIFEST).is_file():
        classes, unlabeled = _manifest(root, sink)
    elif train_dir.is_dir():
        classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
        if not classes:
            raise DataError(f"{train_dir} has no class folders")
        _add_class_folders(sink, train_dir, classes, root)
        unlabeled = 0
    else:
        raise DataError(f"{root} must contain train/ and val/ (or test/) folders of class folders")
    unlabeled += _add_unlabeled(sink, root)
    if not len(sink):
        raise DataError(f"{train_dir} has no images ({', '.join(EXTENSIONS)}) in class folders")
    return classes, unlabeled > 0


def _list_into(root: Path) -> Callable[[Sink, Sink], list[str]]:
    """Fills a training and a test sink with the folder's listing; returns the classes."""

    def fill(train: Sink, test: Sink) -> list[str]:
        classes, unlabeled = _training_images(root, train)
        _test_images(root, classes, unlabeled, test)
        return classes

    return fill


def _key(root: Path) -> str:
    """:func:`~svpkit.data.listing_handoff.folder_key` of ``root``: the folders whose entries the
    listing reads (the root, the split folders and their class folders, ``unlabeled/``'s tree) and
    the manifest files."""
    folders = [root]
    for split in ("train", "val", "test"):
        if (root / split).is_dir():
            folders += [root / split, *sorted(Path(e.path) for e in os.scandir(root / split) if e.is_dir())]
    if (root / UNLABELED_DIR).is_dir():
        folders += _tree(root / UNLABELED_DIR)
    return folder_key(root, folders, [root / MANIFEST, root / CLASSES_FILE], {"extensions": EXTENSIONS})


def _tree(folder: Path) -> list[Path]:
    """``folder`` and the folders below it (symbolic links not followed, as ``rglob``), sorted;
    one directory entry at a time (no list of its files)."""
    found, todo = [], [folder]
    while todo:
        found.append(todo.pop())
        with os.scandir(found[-1]) as entries:
            todo += [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    return sorted(found)


def _listings(root: Path, private: bool) -> tuple[Listing, Listing, list[str], str]:
    """The training and test listings, the classes and who listed (``listing_handoff.list_once``;
    ``private``: this process, into memory)."""
    if private or not one_lister_per_machine():
        train, test = Collect(root), Collect(root)
        classes = _list_into(root)(train, test)
        return Listing(*train.finish()), Listing(*test.finish()), classes, "private"
    train_arrays, test_arrays, classes, how = list_once(root, lambda: _key(root), _list_into(root))
    return Listing(*train_arrays), Listing(*test_arrays), classes, how


def load_imagefolder(
    path: str | Path | None = None,
    size: int = DEFAULT_SIZE,
    stream: str = "auto",
    memory_budget: float | None = None,
    workers: int | None = None,
    on_corrupt: str = "error",
) -> Dataset:
    """Read ``train/`` and ``val/`` (or ``test/``) class folders under ``path`` (module docstring:
    when it streams, and the options)."""
    if not path:
        raise DataError("imagefolder needs a data path (a folder with train/<class>/ and val/<class>/)")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    t0 = time.perf_counter()
    with current().task(f"list {root}", total=None):  # torchrun: local rank 0 alone lists (listing_handoff)
        listing, test_files, classes, how = _listings(root, private=on_corrupt == "skip")
    seconds = {"listing" if how != "mapped" else "listing_wait": time.perf_counter() - t0}
    dropped = 0
    if on_corrupt == "skip":
        (listing, bad_train), (test_files, bad_test) = (_readable(f, size, workers) for f in (listing, test_files))
        dropped = bad_train + bad_test
    if several_ranks() and how == "private":  # one copy of the listing per machine (svpkit.data.shared_listing)
        listing, test_files = (Listing(*shared(f.files, f.labels)) for f in (listing, test_files))
    if several_ranks():
        release_free_memory()  # the private copies' pages, and the listing pass's
    budget = (MEMORY_FRACTION * machine_memory()) if memory_budget is None else memory_budget * 2**30
    decoded = (len(listing) + len(test_files)) * size * size * 3
    streamed = stream == "on" or (stream == "auto" and decoded > budget)
    settings = StreamedImages([], size, workers) if streamed else None
    train = _read(listing, size, settings)
    test = _read(test_files, size, settings) if len(test_files) else Split(train.x[:0], train.y[:0], [])
    t0 = time.perf_counter()
    if isinstance(train.x, StreamedImages):
        mean, std = streamed_moments(train.x, root)
    else:
        mean, std = image_moments(iter(train.x.split(4096)))
    seconds["statistics"] = time.perf_counter() - t0
    access = "stream" if streamed else "memory"
    skipped = f", {dropped} undecodable files skipped" if dropped else ""
    source = f"{root} (image folders at {size}x{size}, {access}{skipped})"
    data = image_dataset("imagefolder", train, test, classes, (mean, std), source, access)
    data.load_seconds.update(seconds)
    return data


def streamed_moments(pool: StreamedImages, root: Path) -> Moments:
    """The pixel mean/std of a streamed pool: from the cache when its files are unchanged
    (:mod:`svpkit.data.stats_cache`), else one decoding pass (then cached)."""
    n = len(pool)
    with current().task(f"check {n:,} training images against the statistics cache", total=n) as advance:
        key = pool.stat_key(root, advance)

    def compute() -> Moments:
        with current().task(f"pixel statistics of {n:,} training images", total=n) as advance:
            return image_moments(_counted(pool.batches(None, 256), advance))

    return cached_moments(key, compute, n)[0]


def _counted(batches: Iterator[torch.Tensor], advance: Advance) -> Iterator[torch.Tensor]:
    for batch in batches:
        yield batch
        advance(len(batch))


def image_dataset(
    name: str,
    train: Split,
    test: Split,
    classes: list[str],
    stats: tuple[tuple[float, ...], tuple[float, ...]],
    source: str,
    access: str,
) -> Dataset:
    """An image data set of uint8 NHWC splits (in memory or streamed), normalised by ``stats``
    (mean, std) and augmented in training."""
    return Dataset(
        name=name,
        train=train,
        test=test,
        num_classes=len(classes),
        modality="image",
        input_shape=tuple(train.x.shape[1:]),
        mean=stats[0],
        std=stats[1],
        augment=True,
        classes=classes,
        source=source,
        access=access,
    )


def _test_images(root: Path, classes: list[str], has_unlabeled: bool, sink: Sink) -> None:
    """Append the test images (``val/`` or ``test/`` class folders) to ``sink``; none only for a
    labeling project."""
    test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if test_dir is None and not has_unlabeled:
        raise DataError(f"{root} must contain train/ and val/ (or test/) folders of class folders")
    if test_dir is not None:
        unknown = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name not in classes)
        if unknown:
            raise DataError(f"{test_dir} has classes that train/ lacks: {', '.join(unknown[:5])}")
        _add_class_folders(sink, test_dir, classes, root)
        if not len(sink):
            raise DataError(f"{test_dir} has no images ({', '.join(EXTENSIONS)}) in class folders")


SPEC = DatasetSpec(
    name="imagefolder",
    load=load_imagefolder,
    description="image folders train/<class>/*.jpg and val/<class>/*.jpg, resized and centre-cropped to 224x224;"
    " unlabeled/ holds unlabeled images",
    needs_path=True,
    modality="image",
    options=(
        DatasetOption("size", int, DEFAULT_SIZE, "side in pixels: shorter side resized, centre-cropped", minimum=8),
        DatasetOption(
            "stream",
            str,
            "auto",
            "decode per batch in loader workers (auto: above the memory budget)",
            ("auto", "on", "off"),
        ),
        DatasetOption("memory_budget", float, None, "GiB a decoded pool may take (default: 1/4 of memory)", minimum=0),
        DatasetOption(
            "workers", int, None, "DataLoader worker processes that decode (default: cores, at most 8)", minimum=0
        ),
        DatasetOption(
            "on_corrupt", str, "error", "an undecodable image: error, or skip it (counted)", ("error", "skip")
        ),
    ),
)
