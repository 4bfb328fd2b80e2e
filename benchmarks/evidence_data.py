"""CIFAR-10 files for the GPU evidence, packed small enough to travel with the checkout.

A device call carries at most 64 MiB; a CIFAR-10 training part is 47 MB as npz. Packed, the
images are delta-coded along each row (lossless: uint8 differences, undone by a wrapping
cumulative sum) and xz-compressed, which takes a part to about 33 MB, so one call can carry the
part, the 1,000 lossless test images and the mlflow wheels together. ``unpack`` restores the
exact npz arrays (``x`` uint8 N×32×32×3, ``y``) in the layout :func:`svpkit.data.cifar.load_cifar10`
reads (``train_part0.npz``, ``test.npz``). ``synthetic`` writes learnable CIFAR-shaped data for the
``--tiny`` mode, which must not depend on the real files.
"""

from __future__ import annotations

import io
import lzma
from pathlib import Path

import numpy as np

PACK_SUFFIX = ".npz.xz"
# The packed files of one evidence run: (source file in the CIFAR-10 data folder, name when unpacked).
CIFAR_FILES = {"train_part0.npz": "train_part0.npz", "test_lossless_first1000.npz": "test.npz"}


def pack(source: Path, target: Path) -> int:
    """Write ``source`` (an npz with ``x`` uint8 images and ``y``) packed to ``target``; its size."""
    with np.load(source) as z:
        x, y = z["x"], z["y"]
    delta = x.copy()
    delta[:, :, 1:] -= x[:, :, :-1]  # uint8 arithmetic wraps: exact and reversible
    buffer = io.BytesIO()
    np.savez(buffer, x=delta, y=y)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(lzma.compress(buffer.getvalue(), preset=6))
    return target.stat().st_size


def unpack(source: Path, target: Path) -> None:
    """Restore a :func:`pack`-ed file as an (uncompressed) npz at ``target``."""
    with np.load(io.BytesIO(lzma.decompress(source.read_bytes()))) as z:
        delta, y = z["x"], z["y"]
    x = np.cumsum(delta, axis=2, dtype=np.uint8)
    target.parent.mkdir(parents=True, exist_ok=True)
    np.savez(target, x=x, y=y)


def pack_cifar(data: Path, packs: Path) -> dict[str, int]:
    """Pack the evidence's CIFAR-10 files from ``data`` into ``packs``: sizes by packed name."""
    return {name: pack(data / name, packs / (name + PACK_SUFFIX)) for name in CIFAR_FILES}


def unpack_cifar(packs: Path, data: Path) -> Path:
    """Unpack the evidence's files from ``packs`` into the folder ``data`` (skipped when there)."""
    for name, unpacked in CIFAR_FILES.items():
        if not (data / unpacked).is_file():
            unpack(packs / (name + PACK_SUFFIX), data / unpacked)
    return data


def synthetic(folder: Path, train: int, test: int, seed: int = 0) -> Path:
    """CIFAR-shaped images with a class-coloured square on noise, as the real files' npz sources."""
    rng = np.random.default_rng(seed)
    for name, n in (("train_part0.npz", train), ("test_lossless_first1000.npz", test)):
        y = rng.integers(0, 10, size=n).astype(np.uint8)
        x = rng.integers(0, 90, size=(n, 32, 32, 3), dtype=np.uint8)
        for i, c in enumerate(y):
            r, q = divmod(int(c), 4)
            x[i, 8 * r + 2 : 8 * r + 8, 8 * q + 2 : 8 * q + 8, c % 3] = 250
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / name, x=x, y=y)
    return folder
