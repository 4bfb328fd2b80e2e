"""CIFAR-10 and CIFAR-100 from local files (no downloads).

Two layouts are read:

* torchvision's: ``<path>/cifar-10-batches-py/`` (``data_batch_1..5``, ``test_batch``,
  ``batches.meta``) or ``<path>/cifar-100-python/`` (``train``, ``test``, ``meta``) — ``path`` may
  also be that folder itself;
* npz files: ``train_part*.npz`` (concatenated in name order) or ``train.npz``, and ``test.npz``,
  each with ``x`` (uint8 N×32×32×3, HWC, RGB) and ``y`` (labels) — the layout of
  ``shared/data/cifar10``.

Images stay uint8 NHWC; the learner normalises with the paper's per-channel mean/std (0–255 units)
and augments (pad-4 random crop, horizontal flip) on the device.
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from svpkit.data.base import Dataset, DatasetSpec, Split
from svpkit.errors import DataError

# The reference code's normalisation (``svp/cifar/datasets.py``), in 0–255 units.
MEANS = {
    "cifar10": (0.4914 * 255, 0.4822 * 255, 0.4465 * 255),
    "cifar100": (0.5071 * 255, 0.4866 * 255, 0.4409 * 255),
}
STDS = {
    "cifar10": (0.24703223 * 255, 0.24348512 * 255, 0.26158784 * 255),
    "cifar100": (0.26733428 * 255, 0.25643846 * 255, 0.27615047 * 255),
}
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
_TORCHVISION_DIR = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
_NUM_CLASSES = {"cifar10": 10, "cifar100": 100}


def _unpickle(file: Path) -> dict[bytes, Any]:
    if not file.is_file():
        raise DataError(f"missing CIFAR file {file}")
    try:
        with file.open("rb") as fh:
            return pickle.load(fh, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(f"{file} is not a readable CIFAR pickle ({type(exc).__name__}: {exc})") from None


def _pickled_split(files: list[Path], label_key: bytes) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for file in files:
        batch = _unpickle(file)
        if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
            raise DataError(f"{file} has no {label_key.decode()!r}/'data' entries (not a CIFAR batch)")
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[label_key])
        if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
            raise DataError(f"{file}: expected uint8 data of shape (N, 3072) and N labels, got {data.shape}")
        # Rows are planar RGB (1024 R, 1024 G, 1024 B); svpkit keeps images HWC.
        xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
        ys.append(labels)
    return np.ascontiguousarray(np.concatenate(xs)), np.concatenate(ys)


def _read_torchvision(
    root: Path, name: str
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], list[str] | None]:
    if name == "cifar10":
        train = _pickled_split([root / f"data_batch_{i}" for i in range(1, 6)], b"labels")
        test = _pickled_split([root / "test_batch"], b"labels")
        meta_file, meta_key = root / "batches.meta", b"label_names"
    else:
        train = _pickled_split([root / "train"], b"fine_labels")
        test = _pickled_split([root / "test"], b"fine_labels")
        meta_file, meta_key = root / "meta", b"fine_label_names"
    classes = None
    if meta_file.is_file():
        meta = _unpickle(meta_file)
        if isinstance(meta, dict) and meta_key in meta:
            classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta[meta_key]]
    return train, test, classes


def _read_npz(file: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as data:
            if "x" not in data or "y" not in data:
                raise DataError(f"{file} must hold arrays 'x' and 'y', has {sorted(data.files)}")
            x, y = data["x"], data["y"]
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise DataError(f"{file} is not a readable npz file ({type(exc).__name__}: {exc})") from None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[1:] != (32, 32, 3):
        raise DataError(f"{file}: 'x' must be uint8 of shape (N, 32, 32, 3), got {x.dtype} {x.shape}")
    if y.ndim != 1 or len(y) != len(x):
        raise DataError(f"{file}: 'y' must hold one label per image ({len(x)}), got shape {y.shape}")
    if not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{file}: labels must be integers, got {y.dtype}")
    return x, y


def _part_key(file: Path) -> tuple[int, str]:
    match = re.search(r"(\d+)$", file.stem)
    return (int(match.group(1)) if match else -1, file.name)


def _read_npz_dir(root: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    parts = sorted(root.glob("train_part*.npz"), key=_part_key)
    if not parts and (root / "train.npz").is_file():
        parts = [root / "train.npz"]
    if not parts:
        raise DataError(f"{root} has no train_part*.npz or train.npz")
    if not (root / "test.npz").is_file():
        raise DataError(f"{root} has no test.npz")
    loaded = [_read_npz(p) for p in parts]
    train = (np.concatenate([x for x, _ in loaded]), np.concatenate([y for _, y in loaded]))
    return train, _read_npz(root / "test.npz")


def _check_labels(y: np.ndarray, num_classes: int, where: str) -> torch.Tensor:
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise DataError(f"{where}: labels must lie in 0..{num_classes - 1}, found {int(y.min())}..{int(y.max())}")
    return torch.from_numpy(y.astype(np.int64))


def load_cifar(name: str, path: str | Path | None) -> Dataset:
    """Load ``cifar10`` or ``cifar100`` from ``path`` (either layout, see the module docstring)."""
    if not path:
        raise DataError(f"{name} needs a data path (a folder with {_TORCHVISION_DIR[name]}/ or npz files)")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{name} data folder {root} does not exist")
    num_classes = _NUM_CLASSES[name]
    classes: list[str] | None = None
    if root.name == _TORCHVISION_DIR[name]:
        (xtr, ytr), (xte, yte), classes = _read_torchvision(root, name)
        layout = "torchvision pickles"
    elif (root / _TORCHVISION_DIR[name]).is_dir():
        root = root / _TORCHVISION_DIR[name]
        (xtr, ytr), (xte, yte), classes = _read_torchvision(root, name)
        layout = "torchvision pickles"
    elif any(root.glob("*.npz")):
        (xtr, ytr), (xte, yte) = _read_npz_dir(root)
        layout = "npz"
    else:
        raise DataError(f"{root} holds neither {_TORCHVISION_DIR[name]}/ nor train/test npz files for {name}")
    if classes is None and name == "cifar10":
        classes = CIFAR10_CLASSES
    return Dataset(
        name=name,
        train=Split(torch.from_numpy(xtr), _check_labels(ytr, num_classes, f"{root} (train)")),
        test=Split(torch.from_numpy(xte), _check_labels(yte, num_classes, f"{root} (test)")),
        num_classes=num_classes,
        modality="image",
        input_shape=(32, 32, 3),
        mean=MEANS[name],
        std=STDS[name],
        augment=True,
        classes=classes,
        source=f"{root} ({layout})",
    )


def load_cifar10(path: str | Path | None = None) -> Dataset:
    return load_cifar("cifar10", path)


def load_cifar100(path: str | Path | None = None) -> Dataset:
    return load_cifar("cifar100", path)


SPECS = [
    DatasetSpec(
        name="cifar10",
        load=load_cifar10,
        description="CIFAR-10 (50,000 / 10,000 32x32 images, 10 classes) from torchvision pickles or npz files",
        needs_path=True,
        modality="image",
    ),
    DatasetSpec(
        name="cifar100",
        load=load_cifar100,
        description="CIFAR-100 (50,000 / 10,000 32x32 images, 100 classes) from torchvision pickles or npz files",
        needs_path=True,
        modality="image",
    ),
]
