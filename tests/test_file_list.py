"""A streamed pool's file list: compact bytes, the same paths and ids as a list of paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from svpkit.data.file_list import FileList
from svpkit.data.streaming import StreamedImages


def test_the_compact_list_gives_the_paths_a_list_gave() -> None:
    root = Path("/data/imnet")
    paths = [root / "train" / f"n{c:03d}" / f"img_{i}é.JPEG" for c in range(3) for i in range(4)]
    files = FileList.of(paths, root)
    assert list(files) == paths and [str(f) for f in files] == [str(p) for p in paths]
    assert files[5] == paths[5] and files[-1] == paths[-1]
    assert files.ids == [p.relative_to(root).as_posix() for p in paths]
    idx = np.array([7, 0, 11, 7])
    assert list(files.take(idx)) == [paths[i] for i in idx]
    assert list(files[2:6]) == paths[2:6] and len(files.take(np.array([], dtype=np.int64))) == 0
    assert list(files + files.take(np.array([1]))) == [*paths, paths[1]]
    # The relative path's bytes plus one int64 offset per file, no Python object per file.
    assert files.nbytes == sum(len(p.relative_to(root).as_posix().encode()) for p in paths) + 8 * (len(paths) + 1)


def test_a_streamed_pool_keeps_its_files_compact(tmp_path: Path) -> None:
    pool = StreamedImages([tmp_path / "a.png", tmp_path / "b.png"], 8)
    assert isinstance(pool.files, FileList) and list(pool.take(np.array([1])).files) == [tmp_path / "b.png"]
