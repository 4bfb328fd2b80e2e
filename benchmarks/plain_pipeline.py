"""The plain PyTorch pipeline of the paper's reference code, as the speed baseline.

As in ``stanford-futuredata/selection-via-proxy`` (and the torchvision CIFAR examples): a
``Dataset`` that returns PIL images, torchvision transforms on the CPU (``RandomCrop(32,
padding=4)``, ``RandomHorizontalFlip``, ``ToTensor``, ``Normalize``), a shuffling ``DataLoader``,
fp32, NCHW, the default SGD implementation, and ``loss.item()`` / accuracy ``.item()`` on every
step. The model, the initial weights (same seed), the optimiser settings and the schedule are the
svpkit learner's, so the two pipelines differ only in how the work is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision import transforms

from svpkit.models.base import TrainConfig
from svpkit.timing import synchronize


class ArrayImages(torch.utils.data.Dataset):
    """uint8 NHWC images served as PIL images through a transform (torchvision's CIFAR10 does this)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, transform: Callable) -> None:
        self.x, self.y, self.transform = x, y, transform

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.transform(Image.fromarray(self.x[i])), int(self.y[i])


def reference_transform(mean: tuple[float, ...], std: tuple[float, ...], train: bool, size: int = 32) -> Callable:
    """``mean``/``std`` in 0–255 units (svpkit's convention), converted for ``ToTensor``'s 0–1."""
    norm = transforms.Normalize([m / 255 for m in mean], [s / 255 for s in std])
    if not train:
        return transforms.Compose([transforms.ToTensor(), norm])
    return transforms.Compose(
        [transforms.RandomCrop(size, padding=4), transforms.RandomHorizontalFlip(), transforms.ToTensor(), norm]
    )


@dataclass
class PlainRun:
    epoch_seconds: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    model: torch.nn.Module | None = None


def train_plain(
    build: Callable[[], torch.nn.Module],
    x: np.ndarray,
    y: np.ndarray,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    config: TrainConfig,
    device: torch.device,
    epochs: int | None = None,
    num_workers: int = 0,
    seed: int = 0,
) -> PlainRun:
    """Train ``build()`` on all of ``x``/``y`` for ``epochs`` (default: the config's) epochs."""
    torch.manual_seed(seed)
    model = build().to(device)
    loader = torch.utils.data.DataLoader(
        ArrayImages(x, y, reference_transform(mean, std, train=True, size=x.shape[1])),
        batch_size=config.batch_size,
        shuffle=True,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
        persistent_workers=num_workers > 0,
    )
    optimizer = torch.optim.SGD(
        model.parameters(),
        lr=config.lr_at(0),
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        nesterov=config.nesterov,
    )
    run = PlainRun(model=model)
    model.train()
    for epoch in range(config.epochs if epochs is None else epochs):
        synchronize(device)
        t0 = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = config.lr_at(epoch)
        total_loss, correct, seen = 0.0, 0, 0
        for inputs, targets in loader:
            inputs, targets = inputs.to(device), targets.to(device)
            outputs = model(inputs)
            loss = F.cross_entropy(outputs, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item() * targets.size(0)
            correct += (outputs.argmax(1) == targets).sum().item()
            seen += targets.size(0)
        synchronize(device)
        run.epoch_seconds.append(time.perf_counter() - t0)
        run.losses.append(total_loss / max(seen, 1))
        run.train_accuracy.append(correct / max(seen, 1))
    return run


def evaluate_plain(
    model: torch.nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    mean: tuple[float, ...],
    std: tuple[float, ...],
    device: torch.device,
    batch_size: int = 128,
    num_workers: int = 0,
) -> float:
    """Top-1 error, reference style (DataLoader of PIL images, fp32)."""
    loader = torch.utils.data.DataLoader(
        ArrayImages(x, y, reference_transform(mean, std, train=False)),
        batch_size=batch_size,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    model.eval()
    wrong = 0
    with torch.no_grad():
        for inputs, targets in loader:
            outputs = model(inputs.to(device))
            wrong += (outputs.argmax(1).cpu() != targets).sum().item()
    return wrong / max(len(y), 1)
