"""One lister per machine under ``torchrun`` (svpkit.data.listing_handoff): local rank 0 lists the
image folder straight into the shared listing files, the other rank maps them without listing;
the folder's key changes with the folder; an unwritable cache and a failing lister end the wait.

The torchrun test starts 2 real gloo ranks (``python -m torch.distributed.run``) on a generated
folder of 12 training and 4 test images.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _folder(root: Path, splits: tuple[str, ...] = ("train", "val")) -> None:
    from torchvision.io import write_png

    rng = np.random.default_rng(0)
    for split in splits:
        for i in range(12 if split == "train" else 4):
            folder = root / split / f"c{i % 3}"
            folder.mkdir(parents=True, exist_ok=True)
            pixels = torch.from_numpy(rng.integers(0, 255, size=(3, 8, 8)).astype(np.uint8))
            write_png(pixels, str(folder / f"{i:03d}é.png"))


def _mapped_file(address: int) -> str | None:
    """The name of the file mapped at ``address`` in this process (None: private memory)."""
    for line in Path("/proc/self/maps").read_text().splitlines():
        fields = line.split(maxsplit=5)
        lo, hi = (int(x, 16) for x in fields[0].split("-"))
        if lo <= address < hi:
            return Path(fields[5]).name if len(fields) > 5 and fields[5].startswith("/") else None
    return None


def _describe(data: Any, seconds: float) -> dict[str, Any]:
    """What a load gave: the phases it measured, the listing files it maps (None: private), its content."""
    mapped: dict[str, str | None] = {}
    for split in ("train", "test"):
        files, labels = getattr(data, split).x.files, getattr(data, split).y
        addresses = {"blob": files.blob.ctypes.data, "offsets": files.offsets.ctypes.data, "labels": labels.data_ptr()}
        mapped |= {f"{split} {name}": _mapped_file(address) for name, address in addresses.items()}
    return {
        "phases": sorted(data.load_seconds),
        "seconds": seconds,
        "mapped": mapped,
        "ids": list(data.train.ids),
        "labels": data.train.y.tolist(),
        "test_ids": list(data.test.ids),
        "classes": data.classes,
    }


def _load(root: Path) -> dict[str, Any]:
    from svpkit.data.imagefolder import load_imagefolder

    t0 = time.perf_counter()
    data = load_imagefolder(root, size=8, stream="on", workers=0)
    return _describe(data, time.perf_counter() - t0)


def _worker(tmp: Path) -> None:
    from svpkit.errors import DataError

    os.environ["SVPKIT_CACHE"] = str(tmp / "cache")
    result: dict[str, Any] = {"shared": _load(tmp / "imgs")}
    os.environ["SVPKIT_CACHE"] = str(tmp / "a_file" / "cache")  # a regular file's "folder": unwritable
    result["unwritable"] = _load(tmp / "imgs")
    os.environ["SVPKIT_CACHE"] = str(tmp / "cache")
    t0 = time.perf_counter()
    try:
        _load(tmp / "bad")
    except DataError as exc:
        result["error"] = [str(exc), time.perf_counter() - t0]
    (tmp / f"rank{os.environ['RANK']}.json").write_text(json.dumps(result))


@pytest.mark.slow
def test_local_rank_0_lists_alone_and_the_other_rank_maps_its_files(tmp_path: Path) -> None:
    _folder(tmp_path / "imgs")
    _folder(tmp_path / "bad", ("train",))  # no val/: local rank 0 fails to list it
    (tmp_path / "a_file").write_text("not a folder")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "SVPKIT_LISTING_WAIT": "60"}
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MLFLOW_RUN_ID", "SVPKIT_CACHE"):
        env.pop(var, None)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", __file__]
    proc = subprocess.run([*cmd, "--worker", str(tmp_path)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    os.environ.pop("WORLD_SIZE", None)
    one = _load(tmp_path / "imgs")  # one process: lists for itself, a private copy
    assert one["phases"] == ["listing", "statistics"] and set(one["mapped"].values()) == {None}
    # Only local rank 0 listed; rank 1 waited for its pointer and mapped the very same files.
    assert [r["shared"]["phases"] for r in ranks] == [["listing", "statistics"], ["listing_wait", "statistics"]]
    files = ranks[0]["shared"]["mapped"]
    assert all(name and name.endswith(f"-{part.split()[1]}.npy") for part, name in files.items()), files
    assert ranks[1]["shared"]["mapped"] == files
    # the listing folder holds these 6 files and the pointers: no spool or temporary file left
    assert sorted(
        p.name for p in (tmp_path / "cache" / "listings").iterdir() if not p.name.endswith(".pointer.json")
    ) == sorted(files.values())
    for rank in ranks:
        for what in ("ids", "labels", "test_ids", "classes"):
            assert rank["shared"][what] == one[what] and rank["unwritable"][what] == one[what], what
    assert len(one["ids"]) == 12 and one["classes"] == ["c0", "c1", "c2"]
    # Unwritable cache: each rank listed for itself at once (no wait), private arrays.
    for rank in ranks:
        assert rank["unwritable"]["phases"] == ["listing", "statistics"]
        assert set(rank["unwritable"]["mapped"].values()) == {None} and rank["unwritable"]["seconds"] < 30
    # Local rank 0 failed to list: rank 1 raised its error from the pointer instead of waiting.
    assert ranks[0]["error"][0] == ranks[1]["error"][0] and "train/ and val/" in ranks[0]["error"][0]
    assert ranks[1]["error"][1] < 30


def test_the_spool_writes_what_numpy_saves_under_the_same_name(tmp_path: Path, monkeypatch: Any) -> None:
    from svpkit.data.shared_listing import Collect, Spool, listing_folder, shared

    monkeypatch.setenv("SVPKIT_CACHE", str(tmp_path / "cache"))
    listing_folder().mkdir(parents=True)
    memory, spool = Collect(tmp_path), Spool(listing_folder(), tmp_path)
    for sink in (memory, spool):
        sink.add([f"train/c0/{i}é.png" for i in range(5)], 0)
        sink.add([], 1)
        sink.add(["unlabeled/a.png", "unlabeled/b/c.png"], [-1, -1])
    files, labels = spool.finish()
    assert isinstance(files.blob, np.memmap) and len(files) == len(labels) == 7
    expected_files, expected_labels = memory.finish()
    assert files.ids == expected_files.ids and labels.tolist() == expected_labels.tolist()
    assert files.offsets.dtype == expected_files.offsets.dtype == np.int32
    arrays = {"blob": expected_files.blob, "offsets": expected_files.offsets, "labels": expected_labels}
    for name, array in arrays.items():
        out = io.BytesIO()
        np.save(out, array, allow_pickle=False)
        assert (listing_folder() / spool.names[name]).read_bytes() == out.getvalue(), name
    again, _ = shared(expected_files, expected_labels)  # the in-memory path names the same files
    assert Path(again.blob.filename).name == spool.names["blob"]  # type: ignore[attr-defined]
    assert sorted(p.name for p in listing_folder().iterdir()) == sorted(spool.names.values())


def test_the_folder_key_changes_with_the_folder(tmp_path: Path) -> None:
    from svpkit.data.imagefolder import _key

    root = tmp_path / "imgs"
    _folder(root)
    key = _key(root)
    assert _key(root) == key
    (root / "train" / "c1" / "new.png").write_bytes((root / "train" / "c1" / "001é.png").read_bytes())
    added = _key(root)
    assert added != key
    (root / "train" / "c1" / "new.png").rename(root / "train" / "c1" / "newer.png")
    assert _key(root) not in (key, added)
    renamed = _key(root)
    (root / "unlabeled" / "deep").mkdir(parents=True)
    assert _key(root) != renamed
    (root / "train.csv").write_text("path,label\n")
    assert _key(root) not in (key, added, renamed)


def test_a_pointer_is_used_only_for_the_unchanged_folder_with_its_files(tmp_path: Path, monkeypatch: Any) -> None:
    """In one process, as local rank 0 and then as local rank 1 of the same launch."""
    from svpkit.data import listing_handoff
    from svpkit.errors import DataError

    root = tmp_path / "imgs"
    _folder(root)
    (root / "unlabeled" / "b").mkdir(parents=True)  # unlabeled images follow the labeled ones
    for name in ("unlabeled/z.png", "unlabeled/b/a.png"):
        (root / name).write_bytes((root / "train" / "c0" / "000é.png").read_bytes())
    monkeypatch.setenv("SVPKIT_CACHE", str(tmp_path / "cache"))
    one = _load(root)
    assert one["ids"][-2:] == ["unlabeled/b/a.png", "unlabeled/z.png"] and one["labels"][-2:] == [-1, -1]
    for var, value in {
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "TORCHELASTIC_RUN_ID": "t",
        "LOCAL_RANK": "0",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.setenv(listing_handoff.WAIT_ENV, "5")
    monkeypatch.setattr(listing_handoff, "_loads", listing_handoff.Counter())
    lister = _load(root)
    assert lister["phases"] == ["listing", "statistics"] and None not in lister["mapped"].values()
    monkeypatch.setenv("LOCAL_RANK", "1")
    listing_handoff._loads.clear()  # the same load again, as the other rank
    waiter = _load(root)
    assert waiter["phases"] == ["listing_wait", "statistics"] and waiter["mapped"] == lister["mapped"]
    for what in ("ids", "labels", "test_ids", "classes"):
        assert lister[what] == waiter[what] == one[what], what
    for name in lister["mapped"].values():  # the files are gone: the pointer is not trusted
        (tmp_path / "cache" / "listings" / name).unlink(missing_ok=True)
    listing_handoff._loads.clear()
    again = _load(root)
    assert again["phases"] == ["listing", "statistics"] and again["ids"] == lister["ids"]
    (root / "train" / "c2" / "new.png").write_bytes((root / "train" / "c2" / "002é.png").read_bytes())
    listing_handoff._loads.clear()  # the folder changed after local rank 0 listed it: never the stale listing
    with pytest.raises(DataError, match="changed while the torchrun ranks were loading it"):
        _load(root)
    start = time.perf_counter()
    with pytest.raises(DataError, match="did not list"):  # nobody lists this load (the 2nd): the wait ends
        _load(tmp_path / "cache" / ".." / "imgs")  # another path of the same folder
    assert time.perf_counter() - start < 30


if __name__ == "__main__" and sys.argv[1:2] == ["--worker"]:
    _worker(Path(sys.argv[2]))
