"""Image folders (ImageNet layout): ``<path>/train/<class>/*.jpg`` and ``<path>/val/<class>/*.jpg``
(``test/`` is accepted for ``val/``).

Every image is decoded with torchvision, its shorter side resized to ``size`` and centre-cropped to
``size``×``size`` (the usual evaluation transform), and kept as uint8 NHWC in memory, so the torch
learner can draw batches on the device. Classes are the sorted folder names of ``train/``; the
mean/std come from the training images. This suits data sets that fit in memory at ``size``; the
whole of ImageNet at 224 pixels (≈190 GB) does not.
"""

from __future__ import annotations

from pathlib import Path

import torch

from svpkit.data.base import Dataset, DatasetSpec, Split
from svpkit.errors import DataError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
DEFAULT_SIZE = 224


def _decode(file: Path, size: int) -> torch.Tensor:
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.transforms.v2 import functional as TF

    try:
        image = decode_image(str(file), mode=ImageReadMode.RGB)
    except (RuntimeError, ValueError, OSError) as exc:
        raise DataError(f"cannot decode image {file} ({type(exc).__name__}: {exc})") from None
    image = TF.resize(image, [size], antialias=True)
    image = TF.center_crop(image, [size, size])
    return image.permute(1, 2, 0).contiguous()


def _read_split(folder: Path, classes: list[str], size: int) -> Split:
    images: list[torch.Tensor] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = folder / name
        if not class_dir.is_dir():
            continue
        for file in sorted(class_dir.iterdir()):
            if file.suffix.lower() in EXTENSIONS:
                images.append(_decode(file, size))
                labels.append(label)
    if not images:
        raise DataError(f"{folder} has no images ({', '.join(EXTENSIONS)}) in class folders")
    return Split(torch.stack(images), torch.tensor(labels, dtype=torch.int64))


def load_imagefolder(path: str | Path | None = None, size: int = DEFAULT_SIZE) -> Dataset:
    """Read ``train/`` and ``val/`` (or ``test/``) class folders under ``path``."""
    if not path:
        raise DataError("imagefolder needs a data path (a folder with train/<class>/ and val/<class>/)")
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"image folder {root} does not exist")
    train_dir = root / "train"
    test_dir = next((root / n for n in ("val", "test") if (root / n).is_dir()), None)
    if not train_dir.is_dir() or test_dir is None:
        raise DataError(f"{root} must contain train/ and val/ (or test/) folders of class folders")
    classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
    if not classes:
        raise DataError(f"{train_dir} has no class folders")
    unknown = sorted(p.name for p in test_dir.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise DataError(f"{test_dir} has classes that train/ lacks: {', '.join(unknown[:5])}")
    train = _read_split(train_dir, classes, size)
    test = _read_split(test_dir, classes, size)
    pixels = train.x.reshape(-1, train.x.shape[-1]).double()
    mean = tuple(float(v) for v in pixels.mean(0))
    std = tuple(float(v) for v in pixels.std(0).clamp_min(1.0))
    return Dataset(
        name="imagefolder",
        train=train,
        test=test,
        num_classes=len(classes),
        modality="image",
        input_shape=(size, size, 3),
        mean=mean,
        std=std,
        augment=True,
        classes=classes,
        source=f"{root} (image folders at {size}x{size})",
    )


SPEC = DatasetSpec(
    name="imagefolder",
    load=load_imagefolder,
    description="image folders train/<class>/*.jpg and val/<class>/*.jpg, resized and centre-cropped to 224x224",
    needs_path=True,
    modality="image",
    options=("size",),
)
