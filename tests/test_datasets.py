"""Every data set loader reads small files written in its real formats (torchvision CIFAR pickles,
npz parts, image folders, both text CSV layouts) and rejects missing or malformed files with a
DataError; the shared CIFAR-10 and SST-2 files are read when present."""

from __future__ import annotations

import csv
import gzip
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from svpkit.cli import app
from svpkit.data.base import UNLABELED
from svpkit.data.cifar import load_cifar10, load_cifar100
from svpkit.data.imagefolder import load_imagefolder
from svpkit.data.npz import load_npz
from svpkit.data.text_csv import load_text_csv
from svpkit.errors import ConfigError, DataError
from svpkit.plugins import get_plugins

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
runner = CliRunner()


def _planar(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """CIFAR rows (N×3072, planar RGB) and the same images as N×32×32×3."""
    images = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    return images.transpose(0, 3, 1, 2).reshape(n, 3072).copy(), images


def _dump(path: Path, obj: dict) -> None:
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=2)


def _write_cifar10_pickles(root: Path) -> tuple[np.ndarray, np.ndarray]:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = [], []
    for i in range(1, 6):
        rows, imgs = _planar(3, i)
        ys = [(i + j) % 10 for j in range(3)]
        _dump(folder / f"data_batch_{i}", {b"batch_label": b"x", b"labels": ys, b"data": rows, b"filenames": []})
        images.append(imgs)
        labels += ys
    rows, _ = _planar(2, 99)
    _dump(folder / "test_batch", {b"labels": [0, 9], b"data": rows})
    _dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_cases_per_batch": 3})
    return np.concatenate(images), np.array(labels)


def test_cifar10_from_torchvision_pickles(tmp_path: Path) -> None:
    images, labels = _write_cifar10_pickles(tmp_path)
    for path in (tmp_path, tmp_path / "cifar-10-batches-py"):
        data = load_cifar10(path)
        assert data.train.x.dtype == torch.uint8 and data.train.x.shape == (15, 32, 32, 3)
        assert np.array_equal(data.train.x.numpy(), images)  # planar rows became HWC images
        assert data.train.y.tolist() == labels.tolist() and data.test.y.tolist() == [0, 9]
        assert data.classes == [f"c{i}" for i in range(10)]
        assert data.modality == "image" and data.augment and data.mean is not None and data.mean[0] > 100


def test_cifar100_from_torchvision_pickles(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    rows, images = _planar(4, 1)
    _dump(folder / "train", {b"fine_labels": [0, 50, 99, 7], b"coarse_labels": [0, 1, 2, 3], b"data": rows})
    _dump(folder / "test", {b"fine_labels": [3], b"data": _planar(1, 2)[0]})
    _dump(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)]})
    data = load_cifar100(tmp_path)
    assert data.num_classes == 100 and data.train.y.tolist() == [0, 50, 99, 7]
    assert np.array_equal(data.train.x.numpy(), images) and data.classes[99] == "f99"


def _write_npz(path: Path, n: int, seed: int, labels: np.ndarray | None = None) -> np.ndarray:
    x = np.random.default_rng(seed).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    np.savez(path, x=x, y=labels if labels is not None else (np.arange(n) % 10).astype(np.uint8))
    return x


def test_cifar10_from_npz_parts_in_name_order(tmp_path: Path) -> None:
    parts = {i: _write_npz(tmp_path / f"train_part{i}.npz", 2 + i, seed=i) for i in (0, 1, 2, 10)}
    _write_npz(tmp_path / "test.npz", 3, seed=7)
    data = load_cifar10(tmp_path)
    assert np.array_equal(data.train.x.numpy(), np.concatenate([parts[i] for i in (0, 1, 2, 10)]))
    assert len(data.train) == 2 + 3 + 4 + 12 and len(data.test) == 3


def test_cifar_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_cifar10(tmp_path / "nowhere")
    with pytest.raises(DataError, match="neither"):
        load_cifar10(tmp_path)
    _write_npz(tmp_path / "train_part0.npz", 4, seed=0)
    with pytest.raises(DataError, match="test.npz"):
        load_cifar10(tmp_path)
    _write_npz(tmp_path / "test.npz", 2, seed=1)
    good = (tmp_path / "train_part0.npz").read_bytes()
    (tmp_path / "train_part0.npz").write_bytes(good[: len(good) // 2])  # truncated download
    with pytest.raises(DataError, match="not a readable npz"):
        load_cifar10(tmp_path)
    np.savez(tmp_path / "train_part0.npz", images=np.zeros((2, 32, 32, 3), np.uint8), y=np.zeros(2))
    with pytest.raises(DataError, match="'x' and 'y'"):
        load_cifar10(tmp_path)
    _write_npz(tmp_path / "train_part0.npz", 2, seed=0, labels=np.array([3, 12]))
    with pytest.raises(DataError, match=r"labels must lie in 0\.\.9"):
        load_cifar10(tmp_path)
    np.savez(tmp_path / "train_part0.npz", x=np.zeros((2, 28, 28), np.uint8), y=np.zeros(2, np.uint8))
    with pytest.raises(DataError, match=r"\(N, 32, 32, 3\)"):
        load_cifar10(tmp_path)
    folder = tmp_path / "torchvision" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    with pytest.raises(DataError, match="missing CIFAR file"):
        load_cifar10(folder.parent)
    for i in range(1, 6):
        (folder / f"data_batch_{i}").write_bytes(b"\x80\x02garbage")
    with pytest.raises(DataError, match="not a readable CIFAR pickle"):
        load_cifar10(folder)


def _write_image(path: Path, height: int, width: int, value: int) -> None:
    from torchvision.io import write_jpeg, write_png

    path.parent.mkdir(parents=True, exist_ok=True)
    image = torch.full((3, height, width), value, dtype=torch.uint8)
    image[0] = 255 - value
    (write_png if path.suffix == ".png" else write_jpeg)(image, str(path))


def test_imagefolder(tmp_path: Path) -> None:
    _write_image(tmp_path / "train" / "cat" / "a.jpg", 40, 60, 10)
    _write_image(tmp_path / "train" / "cat" / "b.png", 20, 20, 200)
    _write_image(tmp_path / "train" / "dog" / "c.JPEG", 50, 30, 100)
    (tmp_path / "train" / "dog" / "notes.txt").write_text("not an image")
    _write_image(tmp_path / "val" / "dog" / "d.jpg", 32, 32, 50)
    data = load_imagefolder(tmp_path, size=16)
    assert data.classes == ["cat", "dog"] and data.num_classes == 2
    assert data.train.x.shape == (3, 16, 16, 3) and data.train.x.dtype == torch.uint8
    assert data.train.y.tolist() == [0, 0, 1] and data.test.y.tolist() == [1]
    assert data.input_shape == (16, 16, 3) and data.modality == "image"
    assert (
        abs(int(data.train.x[1, 8, 8, 1]) - 200) <= 2 and abs(int(data.train.x[1, 8, 8, 0]) - 55) <= 2
    )  # PNG: exact RGB
    assert data.mean is not None and data.std is not None and all(s > 0 for s in data.std)


def test_imagefolder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_imagefolder(tmp_path / "nowhere")
    _write_image(tmp_path / "train" / "cat" / "a.jpg", 8, 8, 10)
    with pytest.raises(DataError, match="val/"):
        load_imagefolder(tmp_path)
    _write_image(tmp_path / "val" / "cow" / "b.jpg", 8, 8, 10)
    with pytest.raises(DataError, match="classes that train/ lacks: cow"):
        load_imagefolder(tmp_path)
    (tmp_path / "val" / "cow" / "b.jpg").unlink()
    (tmp_path / "val" / "cow").rmdir()
    (tmp_path / "val" / "cat").mkdir()
    (tmp_path / "val" / "cat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")
    with pytest.raises(DataError, match="cannot decode image"):
        load_imagefolder(tmp_path, size=8)


def _write_csv(path: Path, rows: list[list[str]]) -> None:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", newline="", encoding="utf-8") as fh:  # type: ignore[operator]
        csv.writer(fh).writerows(rows)


def test_text_csv_with_label_text_header(tmp_path: Path) -> None:
    _write_csv(
        tmp_path / "train.csv.gz", [["label", "text"], ["0", "a dull , lifeless film"], ["1", 'a "great" one, really']]
    )
    _write_csv(tmp_path / "test.csv", [["label", "text"], ["1", "fine"]])
    _write_csv(tmp_path / "dev.csv", [["label", "text"], ["0", "unused"]])
    data = load_text_csv(tmp_path)
    assert data.train.x == ["a dull , lifeless film", 'a "great" one, really']
    assert data.train.y.tolist() == [0, 1] and data.test.x == ["fine"]
    assert data.modality == "text" and data.num_classes == 2


def test_text_csv_in_zhang_et_al_layout(tmp_path: Path) -> None:
    _write_csv(tmp_path / "train.csv", [["3", "Title one", "Body, with a comma"], ["1", "T2", 'said "hi"\nthen left'], ["2", "T3", "x"]])  # fmt: skip
    _write_csv(tmp_path / "test.csv", [["4", "T", "y"]])
    (tmp_path / "classes.txt").write_text("World\nSports\nBusiness\nSci/Tech\n")
    data = load_text_csv(tmp_path)
    assert data.train.y.tolist() == [2, 0, 1] and data.test.y.tolist() == [3]  # 1-based in the files
    assert data.train.x[0] == "Title one Body, with a comma" and data.train.x[1] == 'T2 said "hi"\nthen left'
    assert data.num_classes == 4 and data.classes == ["World", "Sports", "Business", "Sci/Tech"]


def test_text_csv_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_text_csv(tmp_path / "nowhere")
    _write_csv(tmp_path / "train.csv", [["label", "text"], ["0", "a"], ["1", "b"]])
    with pytest.raises(DataError, match="no test.csv"):
        load_text_csv(tmp_path)
    _write_csv(tmp_path / "test.csv", [["label", "sentence"], ["0", "a"]])
    with pytest.raises(DataError, match="'label' and 'text'"):
        load_text_csv(tmp_path)
    _write_csv(tmp_path / "test.csv", [["label", "text"], ["positive", "a"]])
    with pytest.raises(DataError, match="'positive' is not an integer"):
        load_text_csv(tmp_path)
    _write_csv(tmp_path / "test.csv", [["0", "title", "a"], ["2", "title", "b"]])
    with pytest.raises(DataError, match="label 0 is invalid; labels are 1-based"):
        load_text_csv(tmp_path)
    (tmp_path / "test.csv").write_bytes(b"label,text\n0,\xff\xfe bad utf-8\n")
    with pytest.raises(DataError, match="cannot read"):
        load_text_csv(tmp_path)
    (tmp_path / "test.csv").unlink()
    (tmp_path / "test.csv.gz").write_bytes(gzip.compress(b"label,text\n0,a\n")[:-6])
    with pytest.raises(DataError, match="cannot read"):
        load_text_csv(tmp_path)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagefolder", "text_csv", "npz"])
def test_missing_data_path_is_one_clear_error(name: str, tmp_path: Path, tracking_uri: str) -> None:
    assert name in get_plugins().datasets
    result = runner.invoke(app, ["active-learning", "--dataset", name, "--data-path", str(tmp_path / "missing")])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: ") and "Traceback" not in result.output


def test_shared_cifar10_npz() -> None:
    if not (SHARED_DATA / "cifar10" / "test.npz").is_file():
        pytest.skip(f"CIFAR-10 files not found under {SHARED_DATA / 'cifar10'}")
    data = load_cifar10(SHARED_DATA / "cifar10")
    assert (len(data.train), len(data.test)) == (50_000, 10_000)
    assert data.train.y[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # the original CIFAR-10 order
    assert np.bincount(data.train.y.numpy()).tolist() == [5000] * 10


def test_shared_sst2_csv() -> None:
    if not (SHARED_DATA / "sst2" / "train.csv.gz").is_file():
        pytest.skip(f"SST-2 files not found under {SHARED_DATA / 'sst2'}")
    data = load_text_csv(SHARED_DATA / "sst2")
    assert (len(data.train), len(data.test), data.num_classes) == (67_349, 1_821, 2)
    assert np.bincount(data.train.y.numpy()).tolist() == [29_780, 37_569]
    assert np.bincount(data.test.y.numpy()).tolist() == [912, 909]


# -- unlabeled training examples (labeling projects, docs/labeling.md) -------------------------
def test_text_csv_with_empty_labels_and_an_id_column(tmp_path: Path) -> None:
    _write_csv(
        tmp_path / "train.csv", [["id", "label", "text"], ["a7", "1", "fine"], ["b2", "", "meh"], ["c9", "", "x"]]
    )
    (tmp_path / "classes.txt").write_text("neg\npos\n")
    data = load_text_csv(tmp_path)  # no test.csv: allowed when some training labels are empty
    assert data.train.y.tolist() == [1, UNLABELED, UNLABELED] and len(data.test) == 0
    assert data.train.ids == ["a7", "b2", "c9"] and data.class_names == ["neg", "pos"]
    assert data.labeled_indices().tolist() == [0] and data.unlabeled_indices().tolist() == [1, 2]
    assert data.example_text(1) == "meh"
    (tmp_path / "classes.txt").unlink()
    _write_csv(tmp_path / "train.csv", [["label", "text"], ["", "a"], ["", "b"]])
    with pytest.raises(DataError, match="name the classes in classes.txt"):
        load_text_csv(tmp_path)
    _write_csv(tmp_path / "train.csv", [["id", "label", "text"], ["a", "0", "x"], ["a", "", "y"]])
    with pytest.raises(DataError, match="distinct, non-empty id"):
        load_text_csv(tmp_path)
    _write_csv(tmp_path / "train.csv", [["label", "text"], ["0", "a"], ["1", "b"]])
    _write_csv(tmp_path / "test.csv", [["label", "text"], ["", "a"]])
    with pytest.raises(DataError, match="label '' is not an integer"):  # test labels are never empty
        load_text_csv(tmp_path)


def test_imagefolder_with_unlabeled_images_and_a_manifest(tmp_path: Path) -> None:
    (tmp_path / "train" / "cat").mkdir(parents=True)  # an empty class folder names a class
    _write_image(tmp_path / "train" / "dog" / "d.jpg", 8, 8, 100)
    _write_image(tmp_path / "unlabeled" / "b" / "2.png", 8, 8, 10)
    _write_image(tmp_path / "unlabeled" / "a.png", 8, 8, 20)
    data = load_imagefolder(tmp_path, size=8)  # no val/: allowed with unlabeled images
    assert data.classes == ["cat", "dog"] and data.train.y.tolist() == [1, UNLABELED, UNLABELED]
    assert data.train.ids == ["train/dog/d.jpg", "unlabeled/a.png", "unlabeled/b/2.png"] and len(data.test) == 0
    assert data.example_text(2) == "unlabeled/b/2.png"
    (tmp_path / "train.csv").write_text("path,label\nunlabeled/a.png,dog\ntrain/dog/d.jpg,\n")
    (tmp_path / "classes.txt").write_text("cat\ndog\nbird\n")
    listed = load_imagefolder(tmp_path, size=8)  # the manifest, then unlabeled/ again
    assert listed.classes == ["cat", "dog", "bird"] and listed.train.y.tolist()[:2] == [1, UNLABELED]
    (tmp_path / "train.csv").write_text("path,label\nunlabeled/a.png,cow\n")
    with pytest.raises(DataError, match="labels outside the classes"):
        load_imagefolder(tmp_path, size=8)
    (tmp_path / "train.csv").write_text("path,label\nnowhere.png,cat\n")
    with pytest.raises(DataError, match="do not exist: nowhere.png"):
        load_imagefolder(tmp_path, size=8)


def test_npz_data_set_with_hidden_labels(tmp_path: Path) -> None:
    x = np.random.default_rng(0).normal(size=(6, 4)).astype(np.float32)
    np.savez(tmp_path / "train.npz", x=x, y=np.array([0, -1, 2, -1, -1, 1]), ids=np.array(list("abcdef")))
    data = load_npz(tmp_path, standardize=False)  # no test.npz: allowed with unlabeled examples
    assert (data.modality, data.input_shape, data.num_classes, len(data.test)) == ("vector", (4,), 3, 0)
    assert data.train.ids == list("abcdef") and data.unlabeled_indices().tolist() == [1, 3, 4]
    assert np.array_equal(data.train.x.numpy(), x) and data.limited(3).train.ids == ["a", "b", "c"]
    filled = data.with_labels(np.array([1, 3]), np.array([2, 0]))
    assert filled.train.y.tolist() == [0, 2, 2, 0, -1, 1] and data.train.y.tolist()[1] == UNLABELED
    with pytest.raises(ConfigError, match="needs every training label, but 3 of the 6"):
        data.require_labels("active learning")
    images = np.zeros((4, 8, 8, 3), np.uint8)
    np.savez(tmp_path / "train.npz", x=images, y=np.full(4, -1), classes=np.array(["no", "yes"]))
    np.savez(tmp_path / "test.npz", x=images[:2], y=np.array([0, 1]))
    data = load_npz(tmp_path)
    assert data.modality == "image" and data.classes == ["no", "yes"] and data.mean is not None
    for train, message in [
        ({"x": x, "y": np.full(6, -1)}, "at least two classes"),
        ({"images": x}, "must hold arrays 'x' and 'y'"),
        ({"x": x, "y": np.full(6, -2)}, "labels must be non-negative"),
        ({"x": x, "y": np.zeros(6, int), "ids": np.array(list("aabbcc"))}, "one distinct id per example"),
    ]:
        (tmp_path / "test.npz").unlink(missing_ok=True)
        np.savez(tmp_path / "train.npz", **train)
        with pytest.raises(DataError, match=message):
            load_npz(tmp_path)
    np.savez(tmp_path / "train.npz", x=x, y=np.zeros(6, int))
    with pytest.raises(DataError, match="no test.npz"):
        load_npz(tmp_path)
