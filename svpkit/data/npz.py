"""A generic data set in npz files: ``<path>/train.npz`` and, optionally, ``<path>/test.npz``.

Each file holds ``x`` — float vectors N×D (modality ``vector``) or uint8 images N×H×W×C
(``image``) — and ``y``, integer labels ``0..C-1``; in ``train.npz`` a label of −1 marks an
unlabeled example (labeling projects, docs/labeling.md). ``train.npz`` may also hold ``ids``
(one distinct string per example; else the index is the id) and ``classes`` (the class names;
needed when the labels alone do not show every class). Without ``test.npz`` there is no test
error, which only a labeling project accepts (the simulation loops refuse unlabeled data anyway).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import torch

from svpkit.data.base import UNLABELED, Dataset, DatasetOption, DatasetSpec, Split, pixel_stats
from svpkit.errors import DataError


def _arrays(file: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(file, allow_pickle=False) as npz:
            return {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{file} is not a readable npz file ({type(exc).__name__}: {exc})") from None


def _split(file: Path, unlabeled: bool) -> tuple[Split, list[str] | None]:
    """The split in ``file`` and its class names (if it names them)."""
    arrays = _arrays(file)
    if "x" not in arrays or "y" not in arrays:
        raise DataError(f"{file} must hold arrays 'x' and 'y', has {sorted(arrays)}")
    x, y = arrays["x"], arrays["y"]
    vectors = x.ndim == 2 and np.issubdtype(x.dtype, np.floating)
    images = x.ndim == 4 and x.dtype == np.uint8
    if not (vectors or images) or y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise DataError(f"{file}: 'x' must be float N×D or uint8 N×H×W×C and 'y' N integers, got {x.shape}, {y.shape}")
    if (y < (UNLABELED if unlabeled else 0)).any():
        raise DataError(f"{file}: labels must be non-negative{' (or -1: unlabeled)' if unlabeled else ''}")
    ids = [str(i) for i in arrays["ids"].tolist()] if "ids" in arrays else None
    if ids is not None and (len(ids) != len(x) or len(set(ids)) != len(ids)):
        raise DataError(f"{file}: 'ids' must hold one distinct id per example")
    classes = [str(c) for c in arrays["classes"].tolist()] if "classes" in arrays else None
    tensor = torch.from_numpy(np.ascontiguousarray(x.astype(np.float32, copy=False) if vectors else x))
    return Split(tensor, torch.from_numpy(y.astype(np.int64)), ids), classes


def vector_stats(x: torch.Tensor, chunk: int = 65536) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-feature mean and std (float64 sums over row chunks, so no second copy of a large
    pool); a feature that does not vary gets std 1 (it is only centred)."""
    total = torch.zeros(x.shape[1], dtype=torch.float64)
    squares = torch.zeros(x.shape[1], dtype=torch.float64)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk].double()
        total += part.sum(0)
        squares += (part * part).sum(0)
    n = max(len(x), 1)
    mean = total / n
    std = (squares / n - mean * mean).clamp_min(0).sqrt()
    std = torch.where(std > 1e-6 * (1 + mean.abs()), std, torch.ones_like(std))
    return mean.float(), std.float()


def standardise(train: Split, test: Split) -> None:
    """Both splits' vectors standardised in place with the training split's statistics."""
    mean, std = vector_stats(train.x)
    for split in (train, test):
        for start in range(0, len(split.x), 65536):
            split.x[start : start + 65536].sub_(mean).div_(std)


def load_npz(path: str | Path | None = None, standardize: bool = True) -> Dataset:
    """Read ``train.npz`` (and ``test.npz`` if present) from the folder ``path``; vectors are
    standardised with the training split's per-feature mean and std unless ``standardize`` is
    false (images are normalised by the learner with their pixel statistics)."""
    if not path:
        raise DataError("npz needs a data path (a folder with train.npz and, optionally, test.npz)")
    root = Path(path).expanduser()
    if not (root / "train.npz").is_file():
        raise DataError(f"{root} has no train.npz")
    train, classes = _split(root / "train.npz", unlabeled=True)
    if (root / "test.npz").is_file():
        test, _ = _split(root / "test.npz", unlabeled=False)
    elif (train.y == UNLABELED).any():
        test = Split(train.x[:0], train.y[:0], [])
    else:
        raise DataError(f"{root} has no test.npz (only a data set with unlabeled examples may lack one)")
    if test.x.shape[1:] != train.x.shape[1:] or test.x.dtype != train.x.dtype:
        raise DataError(f"{root}: test.npz's 'x' is {tuple(test.x.shape[1:])}, train.npz's {tuple(train.x.shape[1:])}")
    labels = torch.cat([train.y, test.y])
    num_classes = len(classes) if classes else int(labels.max()) + 1
    if int(labels.max()) >= num_classes or num_classes < 2:
        raise DataError(
            f"{root}: labels must lie in 0..{num_classes - 1} of at least two classes (name them in 'classes')"
        )
    image = train.x.dtype == torch.uint8
    mean, std = pixel_stats(train.x) if image else (None, None)
    if standardize and not image:
        standardise(train, test)
    scaling = "" if image else ", standardised" if standardize else ", raw vectors"
    return Dataset(
        name="npz",
        train=train,
        test=test,
        num_classes=num_classes,
        modality="image" if image else "vector",
        input_shape=tuple(train.x.shape[1:]),
        mean=mean,
        std=std,
        classes=classes,
        source=f"{root} (npz{scaling})",
    )


SPEC = DatasetSpec(
    name="npz",
    load=load_npz,
    description="train.npz (+ test.npz) with x (float vectors or uint8 NHWC images) and y; y = -1 is unlabeled",
    needs_path=True,
    modality="vector/image",
    options=(
        DatasetOption(
            "standardize", bool, True, "vectors: subtract the training mean, divide by the training std per feature"
        ),
    ),
)
