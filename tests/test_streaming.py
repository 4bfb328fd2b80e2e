"""Streamed image folders: decoded per batch by DataLoader workers, the same picks as in memory,
a memory budget that decides the path, undecodable files as one error line (or skipped)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from runhelpers import find_run, load_array
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.imagefolder import load_imagefolder
from svpkit.data.streaming import StreamedImages

SIZE = 12


def _png_folder(root: Path, n_train: int = 90, n_val: int = 24) -> None:
    """Lossless PNGs of three classes (a class-dependent tint plus noise), 14×16 pixels."""
    from torchvision.io import write_png

    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("val", n_val)):
        for i in range(n):
            label = i % 3
            pixels = rng.integers(0, 120, size=(3, 14, 16)) + 60 * label
            folder = root / split / f"c{label}"
            folder.mkdir(parents=True, exist_ok=True)
            write_png(torch.from_numpy(pixels.astype(np.uint8)), str(folder / f"{i:04d}.png"))


def test_the_streamed_pool_decodes_what_memory_holds(tmp_path: Path) -> None:
    _png_folder(tmp_path, 30, 6)
    memory = load_imagefolder(tmp_path, size=SIZE, stream="off")
    streamed = load_imagefolder(tmp_path, size=SIZE, stream="on", workers=2)
    assert (memory.access, streamed.access) == ("memory", "stream")
    assert isinstance(streamed.train.x, StreamedImages) and streamed.train.x.shape == memory.train.x.shape
    assert (streamed.mean, streamed.std) == (memory.mean, memory.std)
    idx = torch.tensor([7, 0, 29, 7])
    assert torch.equal(streamed.train.x[idx], memory.train.x[idx])  # random access, in the order asked
    assert torch.equal(torch.cat(list(streamed.train.x.batches(None, 8))), memory.train.x)
    assert torch.equal(streamed.limited(train=5).train.x[0:5], memory.train.x[:5])
    # The memory budget decides: a pool over it streams.
    assert load_imagefolder(tmp_path, size=SIZE, memory_budget=0.0).access == "stream"
    assert load_imagefolder(tmp_path, size=SIZE, memory_budget=1.0).access == "memory"


def test_a_streamed_run_picks_what_the_in_memory_run_picks(tmp_path: Path, tracking_uri: str) -> None:
    _png_folder(tmp_path / "png", 60, 12)
    base = ["active-learning", "--quiet", "--dataset", "imagefolder", "--data-path", str(tmp_path / "png")]
    base += ["--proxy", "preact_resnet20", "--target", "preact_resnet20", "--initial", "10", "--budgets", "20,30"]
    base += ["--proxy-epochs", "1", "--no-train-target", "--device", "cpu", "--seed", "3"]
    picks = {}
    for access in ("off", "on"):
        options = f"size={SIZE},stream={access},workers=2"
        result = CliRunner().invoke(app, [*base, "--dataset-options", options, "--run-name", access])
        assert result.exit_code == 0, result.output
        run = find_run(access)
        assert run is not None
        assert run.data.tags["svpkit.data_access"] == {"off": "memory", "on": "stream"}[access]
        picks[access] = [load_array(run.info.run_id, f"rounds/{r}/selected.npy", tmp_path / access) for r in (1, 2)]
    for memory, streamed in zip(picks["off"], picks["on"]):
        assert np.array_equal(memory, streamed)


def test_an_undecodable_file_is_one_error_line_or_skipped(tmp_path: Path, tracking_uri: str) -> None:
    _png_folder(tmp_path, 12, 3)
    bad = tmp_path / "train" / "c1" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    args = ["active-learning", "--quiet", "--dataset", "imagefolder", "--data-path", str(tmp_path)]
    args += ["--proxy", "preact_resnet20", "--target", "preact_resnet20"]
    result = CliRunner().invoke(app, [*args, "--dataset-options", "size=8,stream=on,workers=2"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot decode image") and str(bad) in lines[0]
    assert "Traceback" not in result.output
    skipped = load_imagefolder(tmp_path, size=8, stream="on", workers=2, on_corrupt="skip")
    assert len(skipped.train) == 12 and "1 undecodable files skipped" in skipped.source
    with pytest.raises(Exception, match="broken.png"):
        load_imagefolder(tmp_path, size=8, stream="off")
