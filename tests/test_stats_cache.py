"""The pixel statistics of a streamed image folder are computed once per listing and kept on disk.

A second load of the same files reads them from ``$SVPKIT_CACHE`` without decoding a training image;
a file added, rewritten or touched changes the listing's key, and the next load computes them again.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from svpkit.data import imagefolder, stats_cache
from svpkit.data.imagefolder import load_imagefolder
from svpkit.data.streaming import image_moments


def _folder(root: Path, n_train: int = 24, n_val: int = 6) -> None:
    from torchvision.io import write_png

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            pixels = rng.integers(0, 200, size=(3, 10, 10)) + 20 * (i % 2)
            folder = root / split / f"c{i % 2}"
            folder.mkdir(parents=True, exist_ok=True)
            write_png(torch.from_numpy(pixels.astype(np.uint8)), str(folder / f"{i:03d}.png"))


def _counting_passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the images each statistics pass decodes."""
    passes: list[int] = []

    def counted(batches):  # type: ignore[no-untyped-def]
        seen = list(batches)
        passes.append(sum(len(b) for b in seen))
        return image_moments(iter(seen))

    monkeypatch.setattr(imagefolder, "image_moments", counted)
    return passes


def test_a_second_load_reads_the_statistics_from_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "imgs"
    _folder(root)
    memory = load_imagefolder(root, size=8, stream="off")  # the exact moments of the decoded pool
    passes = _counting_passes(monkeypatch)
    first = load_imagefolder(root, size=8, stream="on", workers=0)
    assert passes == [24]
    entries = list((stats_cache.cache_dir() / stats_cache.KIND).glob("*.json"))
    assert len(entries) == 1 and str(entries[0]).startswith(os.environ["SVPKIT_CACHE"])
    second = load_imagefolder(root, size=8, stream="on", workers=0)
    assert passes == [24]  # no second decoding pass
    assert (second.mean, second.std) == (first.mean, first.std)
    assert (first.mean, first.std) == (memory.mean, memory.std)
    load_imagefolder(root, size=10, stream="on", workers=0)  # another size is another key
    assert passes == [24, 24]


def test_a_changed_folder_invalidates_the_cached_statistics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "imgs"
    _folder(root)
    passes = _counting_passes(monkeypatch)
    before = load_imagefolder(root, size=8, stream="on", workers=0)
    # A rewritten file: same name, same size, new pixels and a new modification time.
    victim = root / "train" / "c0" / "000.png"
    from torchvision.io import write_png

    write_png(torch.full((3, 10, 10), 255, dtype=torch.uint8), str(victim))
    os.utime(victim, ns=(victim.stat().st_atime_ns, victim.stat().st_mtime_ns + 10**9))
    after = load_imagefolder(root, size=8, stream="on", workers=0)
    assert passes == [24, 24] and after.mean != before.mean
    # A file added to a class folder: one more image in the pass.
    (root / "train" / "c1" / "new.png").write_bytes(victim.read_bytes())
    load_imagefolder(root, size=8, stream="on", workers=0)
    assert passes == [24, 24, 25]
    load_imagefolder(root, size=8, stream="on", workers=0)
    assert passes == [24, 24, 25]


def test_an_unwritable_cache_only_means_the_pass_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "imgs"
    _folder(root, 8, 2)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("SVPKIT_CACHE", str(blocker))
    passes = _counting_passes(monkeypatch)
    load_imagefolder(root, size=8, stream="on", workers=0)
    load_imagefolder(root, size=8, stream="on", workers=0)
    assert passes == [8, 8]


class _Recorder:
    """A progress that keeps each task's description and how far it advanced."""

    def __init__(self) -> None:
        self.tasks: list[list[object]] = []

    def task(self, description: str, total: int | None):  # type: ignore[no-untyped-def]
        from contextlib import contextmanager

        @contextmanager
        def opened():  # type: ignore[no-untyped-def]
            record: list[object] = [description, total, 0]
            self.tasks.append(record)

            def advance(n: int = 1) -> None:
                record[2] = int(record[2]) + n  # type: ignore[call-overload]

            yield advance

        return opened()

    def log(self, message: str) -> None:
        pass


def test_listing_and_statistics_show_progress(tmp_path: Path) -> None:
    from svpkit.progress import shown

    root = tmp_path / "imgs"
    _folder(root)
    seen = _Recorder()
    with shown(seen):  # type: ignore[arg-type]
        first = load_imagefolder(root, size=8, stream="on", workers=0)
        load_imagefolder(root, size=8, stream="on", workers=0)
    names = [str(t[0]).split(" ")[0] for t in seen.tasks]
    # Each load: the folder, its train/ and val/ class folders (one step per class), then the cache
    # check; only the first load has a statistics pass.
    assert names == ["list", "list", "list", "check", "pixel", "list", "list", "list", "check"]
    assert [t[1:] for t in seen.tasks[1:3]] == [[2, 2], [2, 2]]
    assert [t[1:] for t in seen.tasks if str(t[0]).startswith(("check", "pixel"))] == [[24, 24]] * 3
    assert set(first.load_seconds) == {"listing", "statistics"}
    from svpkit.contract import Metric
    from svpkit.tracking.memory import MemoryTracker

    tracker = MemoryTracker()
    tracker.log_dataset(first.limited(train=10))  # the load's phases stay with the data set
    assert {Metric.DATA_LISTING_SECONDS, Metric.DATA_STATISTICS_SECONDS} <= set(tracker.metrics)


def test_a_load_and_its_digest_stat_each_training_file_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The statistics cache's key and the data set's digest come from one ``stat`` pass over train/."""
    root = tmp_path / "imgs"
    _folder(root)
    seen: list[str] = []
    real = os.stat

    def counted(path: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        name = os.fspath(path)
        if isinstance(name, str) and f"{os.sep}train{os.sep}" in name and name.endswith(".png"):
            seen.append(name)
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counted)  # Path.stat calls it too
    data = load_imagefolder(root, size=8, stream="on", workers=0)
    digest = data.digest
    assert len(seen) == 24 and len(set(seen)) == 24
    # the digest is what a fresh stat of every file gives (the pool's own fallback computes it that way)
    again = load_imagefolder(root, size=8, stream="on", workers=0)
    fresh = type(again.train.x)(again.train.x.files, 8, 0)
    assert fresh.digest_bytes() == again.train.x.digest_bytes()
    assert again.digest == digest
