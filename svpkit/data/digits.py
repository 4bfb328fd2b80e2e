"""The embedded default: scikit-learn's 8×8 handwritten digits (ships with scikit-learn)."""

from __future__ import annotations

import numpy as np
import torch

from svpkit.data.base import Dataset, DatasetSpec, Split


def load_digits(path: str | None = None, test_fraction: float = 0.2) -> Dataset:
    """1,797 digits split once, stratified with a fixed seed, into train (1,438) and test (359)."""
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    x = bunch.data.astype(np.float32) / 16.0
    y = bunch.target.astype(np.int64)
    rng = np.random.default_rng(20200101)
    test_idx: list[int] = []
    for label in range(10):
        members = np.flatnonzero(y == label)
        n_test = int(round(len(members) * test_fraction))
        test_idx.extend(rng.choice(members, size=n_test, replace=False).tolist())
    test_mask = np.zeros(len(y), dtype=bool)
    test_mask[test_idx] = True
    # Standardise with training statistics so SGD at lr 0.1 behaves as it does on images.
    mean = x[~test_mask].mean(axis=0)
    std = x[~test_mask].std(axis=0) + 1e-3
    x = (x - mean) / std
    return Dataset(
        name="digits",
        train=Split(torch.from_numpy(x[~test_mask]), torch.from_numpy(y[~test_mask])),
        test=Split(torch.from_numpy(x[test_mask]), torch.from_numpy(y[test_mask])),
        num_classes=10,
        modality="vector",
        input_shape=(64,),
        classes=[str(i) for i in range(10)],
        source="sklearn.datasets.load_digits",
    )


SPEC = DatasetSpec(
    name="digits",
    load=load_digits,
    description="scikit-learn 8x8 digits (embedded default): 1,438 train / 359 test, 10 classes",
    needs_path=False,
    modality="vector",
)
