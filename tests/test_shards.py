"""The ``shards`` data set (litdata chunks): the pixels, labels and picks of the image folder it
was written from, random access by index, undecodable records as one error line, a 2-rank
torchrun run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from runhelpers import find_run, load_array
from test_streaming import SIZE, _png_folder, two_rank_run
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.imagefolder import _class_folders, load_imagefolder
from svpkit.data.shards import ShardedImages, load_shards, write_image_shards


def _shards_of(folder: Path, out: Path, chunk_items: int = 16) -> Path:
    """The image folder's train/ and val/ as litdata folders, in the image folder's order."""
    classes = sorted(p.name for p in (folder / "train").iterdir())
    for split in ("train", "val"):
        write_image_shards(_class_folders(folder / split, classes), out / split, chunk_items)
    (out / "classes.txt").write_text("\n".join(classes))
    return out


def test_shards_hold_what_the_image_folder_holds(tmp_path: Path) -> None:
    _png_folder(tmp_path / "png", 40, 9)
    memory = load_imagefolder(tmp_path / "png", size=SIZE, stream="off")
    sharded = load_shards(_shards_of(tmp_path / "png", tmp_path / "shards"), size=SIZE, workers=2)
    assert sharded.access == "stream" and isinstance(sharded.train.x, ShardedImages)
    assert sharded.train.x.shape == memory.train.x.shape and sharded.classes == memory.classes
    assert torch.equal(sharded.train.y, memory.train.y) and torch.equal(sharded.test.y, memory.test.y)
    assert (sharded.mean, sharded.std) == (memory.mean, memory.std)
    idx = torch.tensor([33, 0, 17, 33])  # across chunks of 16, in the order asked
    assert torch.equal(sharded.train.x[idx], memory.train.x[idx])
    assert torch.equal(torch.cat(list(sharded.train.x.batches([5, 39, 1], 2))), memory.train.x[[5, 39, 1]])
    part = sharded.limited(train=7).train.x
    assert torch.equal(part[0:7], memory.train.x[:7]) and part.digest_bytes() != sharded.train.x.digest_bytes()


def test_a_sharded_run_picks_what_the_in_memory_run_picks(tmp_path: Path, tracking_uri: str) -> None:
    _png_folder(tmp_path / "png", 60, 12)
    _shards_of(tmp_path / "png", tmp_path / "shards")
    base = ["active-learning", "--quiet", "--proxy", "preact_resnet20", "--target", "preact_resnet20"]
    base += ["--initial", "10", "--budgets", "20,30", "--proxy-epochs", "1", "--no-train-target", "--seed", "3"]
    picks = {}
    for name, data in (("memory", "imagefolder"), ("shards", "shards")):
        where = ["--dataset", data, "--data-path", str(tmp_path / ("png" if name == "memory" else "shards"))]
        options = f"size={SIZE},workers=2" + (",stream=off" if name == "memory" else "")
        # The default selector auto picks on the model's features over shards (embedding=auto → model).
        given = ["--selector-options", "embedding=model"] if name == "memory" else []
        result = CliRunner().invoke(app, [*base, *where, *given, "--dataset-options", options, "--run-name", name])
        assert result.exit_code == 0, result.output
        run = find_run(name)
        assert "embedding=model" in run.data.tags["svpkit.selector_options"].split(",")
        picks[name] = [load_array(run.info.run_id, f"rounds/{r}/selected.npy", tmp_path / name) for r in (1, 2)]
    assert find_run("shards").data.tags["svpkit.data_access"] == "stream"
    for memory, sharded in zip(picks["memory"], picks["shards"]):
        assert np.array_equal(memory, sharded)


def test_an_undecodable_record_is_one_error_line(tmp_path: Path, tracking_uri: str) -> None:
    _png_folder(tmp_path / "png", 12, 3)
    classes = ["c0", "c1", "c2"]
    items = [*_class_folders(tmp_path / "png" / "train", classes), (b"\x89PNG\r\n\x1a\n not really a png", 1)]
    write_image_shards(items, tmp_path / "shards" / "train")
    write_image_shards(_class_folders(tmp_path / "png" / "val", classes), tmp_path / "shards" / "val")
    args = ["active-learning", "--quiet", "--proxy", "preact_resnet20", "--target", "preact_resnet20"]
    args += ["--dataset", "shards", "--data-path", str(tmp_path / "shards")]
    result = CliRunner().invoke(app, [*args, "--dataset-options", "size=8,workers=2"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: cannot decode image example 12 of "), lines
    assert "Traceback" not in result.output
    missing = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "nothing")])
    assert missing.exit_code == 2 and missing.output.startswith("error: shards needs a folder with train/index.json")


@pytest.mark.slow
def test_two_ranks_over_shards_give_one_finished_run(tmp_path: Path) -> None:
    _png_folder(tmp_path / "png", 48, 6)
    two_rank_run(tmp_path, "shards", _shards_of(tmp_path / "png", tmp_path / "shards"))
