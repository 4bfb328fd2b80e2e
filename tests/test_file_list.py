"""A streamed pool's file list: compact bytes, the same paths and ids as a list of paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from svpkit.data.file_list import INT32_LIMIT, FileList, narrow_offsets, offset_dtype
from svpkit.data.streaming import StreamedImages
from svpkit.loops.scoring import pool_index
from svpkit.selectors.base import Selection


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
    # The relative path's bytes plus one int32 offset per file, no Python object per file.
    assert files.nbytes == sum(len(p.relative_to(root).as_posix().encode()) for p in paths) + 4 * (len(paths) + 1)
    assert files.offsets.dtype == np.int32 and files.take(idx).offsets.dtype == np.int32


def test_offsets_widen_past_two_gib_of_paths() -> None:
    assert offset_dtype(INT32_LIMIT) == np.int32 and offset_dtype(INT32_LIMIT + 1) == np.int64
    wide = narrow_offsets(np.array([0, 5, INT32_LIMIT + 7], dtype=np.int64))
    assert wide.dtype == np.int64 and int(wide[-1]) == INT32_LIMIT + 7


def test_the_round_pool_index_is_int32_and_its_picks_int64() -> None:
    pool = pool_index(10, np.array([0, 3, 9]))
    assert pool.dtype == np.int32 and pool.tolist() == [1, 2, 4, 5, 6, 7, 8]
    assert Selection(picks=pool[[2, 0]], scores=np.zeros(7, dtype=np.float32)).picks.dtype == np.int64


def test_a_streamed_pool_keeps_its_files_compact(tmp_path: Path) -> None:
    pool = StreamedImages([tmp_path / "a.png", tmp_path / "b.png"], 8)
    assert isinstance(pool.files, FileList) and list(pool.take(np.array([1])).files) == [tmp_path / "b.png"]
